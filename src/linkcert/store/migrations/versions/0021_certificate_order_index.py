"""Certificates are indexed by their order, so that deleting an order is one index look.

The workers delete certificates past their retention together with the finished ACME orders
they came from. PostgreSQL checks, for each order deleted, that no certificate still names it
(the foreign key): without this index that check reads the whole `certificates` table, once
per order.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_certificates_order_id", "certificates", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_certificates_order_id", table_name="certificates")
