"""Delegated DNS-01: each domain's delegation state as last checked.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("domains", sa.Column("dcv_state", sa.String(length=16), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0015.
    op.drop_column("domains", "dcv_state")
