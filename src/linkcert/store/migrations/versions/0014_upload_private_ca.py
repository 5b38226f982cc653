"""Uploaded certificates remember whether they chain only to a private CA.

Uploads are now verified to the system's public roots, or to the operator's bundle of private
roots (`upload_ca_bundle`); those of the second kind are marked so that the console can say
they are not publicly trusted. Certificates stored before were not verified this way and are
left unmarked.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("private_ca", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_column("private_ca")
