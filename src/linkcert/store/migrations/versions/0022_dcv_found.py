"""Delegated DNS-01: what each domain's `_acme-challenge` CNAME pointed to when last checked.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("domains", sa.Column("dcv_found", sa.String(length=253), nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0015.
    op.drop_column("domains", "dcv_found")
