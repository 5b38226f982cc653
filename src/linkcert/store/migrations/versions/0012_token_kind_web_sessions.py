"""API tokens state their kind; page sessions live in the database, so logging out ends them.

`api_tokens.kind` is filled from what the code inferred until now (no account: an operator's
token), and a check keeps the kind and the account consistent from then on. `web_sessions`
holds one row per logged-in browser, named by the hash of the id its cookie carries.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="account")
        )
    op.execute("UPDATE api_tokens SET kind = 'operator' WHERE account_id IS NULL")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)
        batch_op.create_check_constraint(
            "ck_api_tokens_kind",
            "(kind = 'operator' AND account_id IS NULL)"
            " OR (kind = 'account' AND account_id IS NOT NULL)",
        )
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_web_sessions_token_id", ["token_id"], unique=False)
        batch_op.create_index("ix_web_sessions_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_web_sessions_expires_at")
        batch_op.drop_index("ix_web_sessions_token_id")
    op.drop_table("web_sessions")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint("ck_api_tokens_kind", type_="check")
        batch_op.drop_column("kind")
