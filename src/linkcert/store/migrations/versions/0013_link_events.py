"""Click and open events for the platform: link_events, the cursors of the consumers linkcert
feeds, and accounts' webhook endpoints for event batches.

The old `clicks` table is left as it was: nothing wrote anything readable to it, and nothing
writes to it any more.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = linkcert.store.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "link_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=True),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("at", _UTC(timezone=True), nullable=False),
        sa.Column("minted_at", sa.BigInteger(), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=600), nullable=True),
        sa.Column("machine", sa.String(length=64), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_link_events_account", "link_events", ["account_id", "id"])
    op.create_table(
        "event_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", _UTC(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "account_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_account_webhooks_account_id", "account_webhooks", ["account_id"])
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_deliveries_endpoint",
            "account_webhooks",
            ["endpoint_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("fk_deliveries_endpoint", type_="foreignkey")
        batch_op.drop_column("endpoint_id")
    op.drop_index("ix_account_webhooks_account_id", table_name="account_webhooks")
    op.drop_table("account_webhooks")
    op.drop_table("event_cursors")
    op.drop_index("ix_link_events_account", table_name="link_events")
    op.drop_table("link_events")
