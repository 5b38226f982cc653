"""Initial schema: accounts, domains, certificates, ACME accounts and orders, events, links.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import linkcert.store.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("contact_emails", sa.JSON(), nullable=False),
        sa.Column("tracking_domain_id", sa.Integer(), nullable=True),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "acme_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("directory_url", sa.String(length=500), nullable=False),
        sa.Column("uri", sa.String(length=500), nullable=True),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("contact", sa.String(length=320), nullable=True),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("directory_url"),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("link_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index("ix_clicks_link", ["link_id"], unique=False)

    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("unicode_name", sa.String(length=253), nullable=False),
        sa.Column("registrable", sa.String(length=253), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("wanted", sa.Boolean(), nullable=False),
        sa.Column("dns_state", sa.String(length=32), nullable=False),
        sa.Column("cert_state", sa.String(length=32), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column(
            "next_attempt_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failure_class", sa.String(length=32), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", linkcert.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("current_certificate_id", sa.Integer(), nullable=True),
        sa.Column(
            "dns_checked_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("moved_since", linkcert.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domains_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_domains_due", ["next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_domains_registrable"), ["registrable"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("dns_state", sa.String(length=32), nullable=False),
        sa.Column("cert_state", sa.String(length=32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_domain_at", ["domain_id", "id"], unique=False)

    op.create_table(
        "links",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_links_domain_id"), ["domain_id"], unique=False)

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("acme_account_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("csr_pem", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["acme_account_id"],
            ["acme_accounts.id"],
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_domain_id"), ["domain_id"], unique=False)

    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=400), nullable=False),
        sa.Column("not_before", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_after", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_certificates_domain_id"), ["domain_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_certificates_not_after"), ["not_after"], unique=False)

    op.create_table(
        "challenges",
        sa.Column("token", sa.String(length=255), nullable=False),
        sa.Column("key_authorization", sa.String(length=512), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("created_at", linkcert.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
        ),
        sa.PrimaryKeyConstraint("token"),
    )
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_challenges_domain_id"), ["domain_id"], unique=False)

    # accounts and domains refer to each other, so these two keys come once both tables exist.
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_accounts_tracking_domain", "domains", ["tracking_domain_id"], ["id"]
        )
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_domains_current_certificate", "certificates", ["current_certificate_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_constraint("fk_domains_current_certificate", type_="foreignkey")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_accounts_tracking_domain", type_="foreignkey")
    with op.batch_alter_table("challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_challenges_domain_id"))

    op.drop_table("challenges")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_not_after"))
        batch_op.drop_index(batch_op.f("ix_certificates_domain_id"))

    op.drop_table("certificates")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_domain_id"))

    op.drop_table("orders")
    with op.batch_alter_table("links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_links_domain_id"))

    op.drop_table("links")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_domain_at")

    op.drop_table("events")
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domains_registrable"))
        batch_op.drop_index("ix_domains_due")
        batch_op.drop_index(batch_op.f("ix_domains_account_id"))

    op.drop_table("domains")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_clicks_link")

    op.drop_table("clicks")
    op.drop_table("acme_accounts")
    op.drop_table("accounts")
