"""Filling a store with a fleet of secured domains, in bulk, for the renewal benchmark.

Rows are inserted directly (no API, no events): what matters is the shape of the `domains`
table the worker scans. Every domain has a current certificate; a fixed number are due now and
the rest are due at random times over the next 60 days, as certificates issued over time are.
The certificate text and key blob are placeholders: nothing here decrypts or parses them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, text, update

from linkcert.store import Certificate, Domain, Store

CHUNK = 5000
PLACEHOLDER_PEM = "-----BEGIN CERTIFICATE-----\nYmVuY2g=\n-----END CERTIFICATE-----\n"
HORIZON = timedelta(days=60)
_RESET_SEQUENCES = (
    "SELECT setval(pg_get_serial_sequence('domains', 'id'), (SELECT max(id) FROM domains))",
    "SELECT setval(pg_get_serial_sequence('certificates', 'id'), "
    "(SELECT max(id) FROM certificates))",
)


@dataclass(frozen=True)
class Fleet:
    size: int
    due_ids: frozenset[int]


def fill(store: Store, size: int, due: int, now: datetime, seed: int = 7) -> Fleet:
    """Insert `size` domains with certificates; `due` of them (spread over the ids) due now."""
    rng = random.Random(seed)
    due_ids = frozenset(rng.sample(range(1, size + 1), min(due, size)))
    for start in range(1, size + 1, CHUNK):
        ids = range(start, min(start + CHUNK, size + 1))
        when = {i: _next_attempt(i in due_ids, now, rng) for i in ids}
        with store.session() as session:
            session.execute(insert(Domain), [_domain_row(i, when[i], now) for i in ids])
            session.execute(insert(Certificate), [_certificate_row(i, when[i], now) for i in ids])
    with store.session() as session:
        # Certificate i belongs to domain i, so one statement links them all.
        session.execute(
            update(Domain)
            .values(current_certificate_id=Domain.id)
            .execution_options(synchronize_session=False)
        )
    if store.dialect == "postgresql":
        # Sequences were bypassed by the explicit ids; statistics are what autovacuum would
        # have gathered by the time a real fleet reached this size.
        with store.session() as session:
            for statement in _RESET_SEQUENCES:
                session.execute(text(statement))
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE domains"))
            conn.execute(text("VACUUM ANALYZE certificates"))
    return Fleet(size, due_ids)


def _next_attempt(is_due: bool, now: datetime, rng: random.Random) -> datetime:
    if is_due:
        return now - timedelta(seconds=rng.uniform(1, 600))
    return now + HORIZON * rng.uniform(0.0005, 1)


def _domain_row(i: int, next_attempt_at: datetime, now: datetime) -> dict[str, object]:
    registrable = f"shop{i:06d}.test"
    return {
        "id": i,
        "name": f"links.{registrable}",
        "unicode_name": f"links.{registrable}",
        "registrable": registrable,
        "account_id": None,
        "kind": "customer",
        "wanted": True,
        "dns_state": "ok",
        "cert_state": "active",
        "problems": [],
        "next_attempt_at": next_attempt_at,
        "attempts": 0,
        "delete_requested": False,
        "dns_checked_at": now - timedelta(hours=1),
        "created_at": now - timedelta(days=30),
        "updated_at": now - timedelta(hours=1),
    }


def _certificate_row(i: int, renew_at: datetime, now: datetime) -> dict[str, object]:
    return {
        "id": i,
        "domain_id": i,
        "chain_pem": PLACEHOLDER_PEM,
        "key_encrypted": i.to_bytes(8, "big") * 8,
        "serial": f"{i:032x}",
        "issuer": "Bench CA",
        "not_before": now - timedelta(days=30),
        "not_after": now + timedelta(days=60),
        "fingerprint_sha256": f"{i:064x}",
        "source": "acme",
        "created_at": now - timedelta(days=30),
        "renew_at": renew_at,
    }
