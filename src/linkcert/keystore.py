"""Where encrypted private keys live in the store, and what each is bound to.

Every blob is bound to what it protects: an ACME account key to its CA directory, a certificate
key to its domain, a TLS ticket key to its period. Rotation re-encrypts each blob in place
under the current master key.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import select

from linkcert.keys import MasterKeys
from linkcert.store import AcmeAccount, Certificate, Domain, Order, Store, TicketKey


def account_key_context(directory_url: str) -> str:
    return f"acme-account:{directory_url}"


def cert_key_context(domain_name: str) -> str:
    return f"cert-key:{domain_name}"


def ticket_key_context(period: int) -> str:
    return f"tls-ticket-key:{period}"


def check_master_key(store: Store, keys: MasterKeys) -> None:
    """Raise DecryptionError unless the configured master keys open what is stored.

    Run at start-up: a wrong key must stop the process with a clear message, not surface
    later as certificates that silently fail to load.
    """
    with store.session() as session:
        account = session.scalar(select(AcmeAccount).limit(1))
        if account is not None:
            keys.decrypt(account.key_encrypted, account_key_context(account.directory_url))
        row = session.execute(
            select(Certificate.key_encrypted, Domain.name)
            .join(Domain, Domain.id == Certificate.domain_id)
            .where(Certificate.key_encrypted.is_not(None))
            .order_by(Certificate.id.desc())
            .limit(1)
        ).first()
        if row is not None and row[0] is not None:
            keys.decrypt(row[0], cert_key_context(row[1]))


def rotate_all(store: Store, keys: MasterKeys, batch: int = 500) -> int:
    """Re-encrypt every stored key not yet under the current master key; return the count."""
    changed = 0
    with store.session() as session:
        for account in session.scalars(select(AcmeAccount)):
            context = account_key_context(account.directory_url)
            if (blob := _reencrypted(keys, account.key_encrypted, context)) is not None:
                account.key_encrypted = blob
                changed += 1
        for ticket_key in session.scalars(select(TicketKey)):
            context = ticket_key_context(ticket_key.period)
            if (blob := _reencrypted(keys, ticket_key.key_encrypted, context)) is not None:
                ticket_key.key_encrypted = blob
                changed += 1
    changed += _rotate_cert_keys(store, keys, Certificate, batch)
    changed += _rotate_cert_keys(store, keys, Order, batch)
    return changed


def _rotate_cert_keys(
    store: Store, keys: MasterKeys, model: type[Certificate] | type[Order], batch: int
) -> int:
    # In batches, so a fleet of 100,000 certificates never sits in one transaction.
    changed = 0
    last_id = 0
    while True:
        with store.session() as session:
            rows = session.execute(
                select(model, Domain.name)
                .join(Domain, Domain.id == model.domain_id)
                .where(model.id > last_id)
                .order_by(model.id)
                .limit(batch)
            ).all()
            if not rows:
                return changed
            for found, domain_name in rows:
                row = cast(Certificate | Order, found)
                last_id = row.id
                if row.key_encrypted is None:
                    continue
                blob = _reencrypted(keys, row.key_encrypted, cert_key_context(domain_name))
                if blob is not None:
                    row.key_encrypted = blob
                    changed += 1


def _reencrypted(keys: MasterKeys, blob: bytes, context: str) -> bytes | None:
    """`blob` encrypted under the current master key, or None if it already is."""
    if not keys.needs_rotation(blob):
        return None
    return keys.encrypt(keys.decrypt(blob, context), context)
