"""The certificates' end-date index carries the id, so end dates are read from it alone.

The expiry histogram of the metrics and the console's expiring filter join current
certificates by id and read their end dates: with the id in the index, that is an index-only
scan instead of a read of every certificate row (each holds its chain, a few KiB).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_certificates_not_after_id", "certificates", ["not_after", "id"])
    op.drop_index("ix_certificates_not_after", table_name="certificates")


def downgrade() -> None:
    op.create_index("ix_certificates_not_after", "certificates", ["not_after"])
    op.drop_index("ix_certificates_not_after_id", table_name="certificates")
