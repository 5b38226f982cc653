"""Brand link tracking domain requests: the deliverability team's queue.

Revision ID: 0006
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "brand_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("brand_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_brand_requests_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_brand_requests_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("brand_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_brand_requests_status"))
        batch_op.drop_index(batch_op.f("ix_brand_requests_account_id"))

    op.drop_table("brand_requests")
