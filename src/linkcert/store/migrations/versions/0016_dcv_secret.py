"""Delegated DNS-01: every account gets the secret its delegation labels are made with.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import base64
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _secret() -> str:
    return base64.b32encode(secrets.token_bytes(32)).decode("ascii").rstrip("=").lower()


# Accounts given their secrets per statement batch: one executemany each (a pipeline on
# psycopg), not a round trip per account, which took over ten minutes for a million accounts.
BATCH = 10_000


def upgrade() -> None:
    op.add_column("accounts", sa.Column("dcv_secret", sa.String(length=64), nullable=True))
    bind = op.get_bind()
    accounts = sa.table("accounts", sa.column("id", sa.Integer), sa.column("dcv_secret", sa.String))
    give = (
        accounts.update()
        .where(accounts.c.id == sa.bindparam("account_id"))
        .values(dcv_secret=sa.bindparam("secret"))
    )
    ids = [account_id for (account_id,) in bind.execute(sa.select(accounts.c.id)).all()]
    for start in range(0, len(ids), BATCH):
        bind.execute(
            give,
            [
                {"account_id": account_id, "secret": _secret()}
                for account_id in ids[start : start + BATCH]
            ],
        )


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+), as in 0015.
    op.drop_column("accounts", "dcv_secret")
