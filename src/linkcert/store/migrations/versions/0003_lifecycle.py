"""Lifecycle: when each certificate renews (ARI or lifetime), and deletion with revocation.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("renew_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "ari_next_check_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True
            )
        )

    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("delete_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("deleted_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("key_encrypted", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("key_encrypted", existing_type=sa.LargeBinary(), nullable=False)

    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("delete_requested")

    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_column("ari_next_check_at")
        batch_op.drop_column("renew_at")
