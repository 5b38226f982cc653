"""Indexes for listing domains a page at a time, by filter, in name order.

The API's, the console's and the CLI's lists of domains go in name order from the last name
of the previous page. With an index on (filter column, name) for each filter, a page is one
index range scan at any fleet size. The index on (account_id, name) replaces the one on
account_id alone, whose lookups it serves as well.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_domains_account_name": ["account_id", "name"],
    "ix_domains_dns_state_name": ["dns_state", "name"],
    "ix_domains_cert_state_name": ["cert_state", "name"],
    "ix_domains_failure_name": ["failure_class", "name"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "domains", columns)
    op.drop_index("ix_domains_account_id", table_name="domains")


def downgrade() -> None:
    op.create_index("ix_domains_account_id", "domains", ["account_id"])
    for name in INDEXES:
        op.drop_index(name, table_name="domains")
