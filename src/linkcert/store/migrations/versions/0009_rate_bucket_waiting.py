"""Rate buckets remember the last turn handed to a refused operation.

Without it, every domain refused for want of a token was told to come back when the next
token refills, so a wave of a thousand domains behind a limit of one order a second came back
a thousand at a time, every second, each pass a transaction for nothing.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "waiting_until", linkcert.store.models.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("rate_buckets", schema=None) as batch_op:
        batch_op.drop_column("waiting_until")
