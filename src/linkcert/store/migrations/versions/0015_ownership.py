"""Ownership proven per account: account DNS labels, claims, and the link epoch.

Every account gets its own random DNS label. A name saved before this revision whose DNS was
verified (or that has a certificate) stays its account's, marked `legacy`: the shared target
keeps proving it until the operator moves it to the account's own record. A name saved but
never verified becomes a claim that must be proven like any new one. Approved brand domains
are marked as proven by an operator.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# How long the claims made from unverified names last: the default of claim_expiry_hours.
_CLAIM_LIFETIME = timedelta(hours=72)


def _label() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def upgrade() -> None:
    # Columns are added, never altered: on SQLite, altering a table rebuilds it, which the
    # rows of other tables that refer to it forbid.
    op.add_column("accounts", sa.Column("dns_label", sa.String(length=32), nullable=True))
    op.add_column("domains", sa.Column("proof", sa.String(length=16), nullable=True))
    op.add_column(
        "domains", sa.Column("link_epoch", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_table(
        "domain_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["domain_id"], ["domains.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("domain_id", "account_id", name="uq_domain_claims"),
    )
    op.create_index("ix_domain_claims_domain_id", "domain_claims", ["domain_id"])
    op.create_index("ix_domain_claims_account_id", "domain_claims", ["account_id"])

    bind = op.get_bind()
    accounts = sa.table("accounts", sa.column("id", sa.Integer), sa.column("dns_label", sa.String))
    for (account_id,) in bind.execute(sa.select(accounts.c.id)).all():
        bind.execute(
            accounts.update().where(accounts.c.id == account_id).values(dns_label=_label())
        )
    op.create_index("ix_accounts_dns_label", "accounts", ["dns_label"], unique=True)

    domains = sa.table(
        "domains",
        sa.column("id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("dns_state", sa.String),
        sa.column("current_certificate_id", sa.Integer),
        sa.column("deleted_at", linkcert.store.models.UTCDateTime(timezone=True)),
        sa.column("proof", sa.String),
    )
    claims = sa.table(
        "domain_claims",
        sa.column("domain_id", sa.Integer),
        sa.column("account_id", sa.Integer),
        sa.column("state", sa.String),
        sa.column("problems", sa.JSON),
        sa.column("created_at", linkcert.store.models.UTCDateTime(timezone=True)),
        sa.column("expires_at", linkcert.store.models.UTCDateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    rows = bind.execute(
        sa.select(
            domains.c.id,
            domains.c.account_id,
            domains.c.kind,
            domains.c.dns_state,
            domains.c.current_certificate_id,
            domains.c.deleted_at,
        ).where(domains.c.account_id.is_not(None))
    ).all()
    for domain_id, account_id, kind, dns_state, cert_id, deleted_at in rows:
        if deleted_at is not None:
            bind.execute(domains.update().where(domains.c.id == domain_id).values(account_id=None))
        elif kind == "brand":
            bind.execute(domains.update().where(domains.c.id == domain_id).values(proof="operator"))
        elif cert_id is not None or dns_state in ("ok", "moved"):
            bind.execute(domains.update().where(domains.c.id == domain_id).values(proof="legacy"))
        else:
            bind.execute(domains.update().where(domains.c.id == domain_id).values(account_id=None))
            bind.execute(
                claims.insert().values(
                    domain_id=domain_id,
                    account_id=account_id,
                    state="pending",
                    problems=[],
                    created_at=now,
                    expires_at=now + _CLAIM_LIFETIME,
                )
            )


def downgrade() -> None:
    bind = op.get_bind()
    domains = sa.table("domains", sa.column("id", sa.Integer), sa.column("account_id", sa.Integer))
    claims = sa.table(
        "domain_claims", sa.column("domain_id", sa.Integer), sa.column("account_id", sa.Integer)
    )
    for domain_id, account_id in bind.execute(sa.select(claims.c.domain_id, claims.c.account_id)):
        bind.execute(
            domains.update()
            .where(domains.c.id == domain_id, domains.c.account_id.is_(None))
            .values(account_id=account_id)
        )
    op.drop_index("ix_domain_claims_account_id", table_name="domain_claims")
    op.drop_index("ix_domain_claims_domain_id", table_name="domain_claims")
    op.drop_table("domain_claims")
    op.drop_column("domains", "link_epoch")
    op.drop_column("domains", "proof")
    op.drop_index("ix_accounts_dns_label", table_name="accounts")
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): rebuilding the table, as batch mode
    # would, is refused while other tables' rows refer to accounts.
    op.drop_column("accounts", "dns_label")
