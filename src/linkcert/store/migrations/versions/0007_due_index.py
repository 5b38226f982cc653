"""Index domains by their current certificate: an edge's look for new certificates.

Every edge process asks the store once a second for the certificates stored since its last
look, joined to the domains they are current for. Without this index that join read the whole
`domains` table each time, a cost that grew with the fleet instead of with the new
certificates (see bench/RESULTS.md, "Renewal scheduling").

Revision ID: 0007
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.create_index(
            "ix_domains_current_certificate", ["current_certificate_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_index("ix_domains_current_certificate")
