"""The event writer's progress through the edges' spool segments.

Edges now hand their click and open events to a spool on their machine, and the event writer
inserts them; how far it got in each segment is kept with the events it inserted.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

_UTC = linkcert.store.models.UTCDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_spool_segments",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _UTC(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("event_spool_segments")
