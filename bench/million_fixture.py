"""A store with N customer domains, each secured by a real, distinct certificate.

    python -m bench.million_fixture --n 1000000          # database linkcert_million
    python -m bench.million_fixture --n 20000 --database linkcert_20k

or, from code:

    from bench import million_fixture
    fixture = million_fixture.fill(million_fixture.database_url("linkcert_million"), 1_000_000)
    fixture.env()        # LINKCERT_* settings that open it (database, master key, tracking key)
    fixture.root_pem     # the CA root a TLS client trusts
    fixture.name(i)      # the name of domain i (1..n)

What is written is what the product writes once each domain has been proven and secured: an
account per domain (or `accounts` accounts, domains dealt out among them; each account with its
DNS label, delegated-DNS secret and tracking domain, its first domain), each domain proven
by DNS (`proof` dns), DNS `ok`, certificate `active`, its current certificate with the chain
(leaf, then the intermediate) as PEM, the private key encrypted under the master key and bound
to the domain's name, serial, issuer, fingerprint, renewal time by the product's own rule, and
the "secured" event of the domain's timeline. The schema is the one the product's migrations
make. Certificates were issued over the last 60 days with a 90-day lifetime, so each is somewhere
in its life and none is due for renewal yet (the product renews at two thirds of a lifetime).
Not written: the finished ACME orders (certificates have no `order_id`), claims, tokens.

Shortcuts, for speed, in this fixture only:
- the leaf certificates share a handful of private keys (`LEAF_KEYS`), each certificate has
  its own name, serial, dates, signature and encrypted key blob;
- keys are derived from fixed numbers, so every run (and every process) has the same CA and
  leaf keys: a benchmark's TLS client trusts `ca().root_pem` without reading any file;
- each leaf is made by patching one template's to-be-signed bytes (name, serial, dates, all
  fixed-width) and signing them with the intermediate's P-256 key, which costs one ECDSA
  signature (cryptography's certificate builder costs about 2.5 times that here); signing
  runs on every core (`processes`).

Rows go in with PostgreSQL COPY, four tables at once on four connections, foreign keys not
checked while loading (`session_replication_role = replica`; the rows are consistent by
construction), then sequences are moved past the ids used and the tables analyzed.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from linkcert.keys import MasterKeys
from linkcert.keystore import cert_key_context
from linkcert.renewal import plan_renewal
from linkcert.store import Store
from linkcert.testbed import pki

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DATABASE = "linkcert_million"
# Fixture-only secrets: fixed so that any process can open the fixture's store.
MASTER_KEY = "million:" + base64.urlsafe_b64encode(
    hashlib.sha256(b"linkcert million fixture master key").digest()
).decode("ascii").rstrip("=")
TRACKING_KEY = "million-fixture-tracking-key-" + "0" * 32
LEAF_KEYS = 8
LIFETIME = dt.timedelta(days=90)
ISSUED_OVER = dt.timedelta(days=60)
MIN_MARGIN = dt.timedelta(hours=48)  # the worker's default
CHUNK = 2000
NAME_DIGITS = 7
MAX_N = 10**NAME_DIGITS - 1
CA_NAME = "linkcert million fixture"

_SERIAL_BASE = 0x4C494E4B << 96  # "LINK", then the domain number: 16 bytes, positive
_TEMPLATE_SERIAL = _SERIAL_BASE | 0xFFFF_FFFF_FFFF
_TEMPLATE_NUMBER = 10**NAME_DIGITS - 1
_TEMPLATE_NOT_BEFORE = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
_TEMPLATE_NOT_AFTER = dt.datetime(2002, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


def name(i: int) -> str:
    """The name of domain `i` (1..MAX_N): every name has the same length."""
    return f"links.c{i:0{NAME_DIGITS}d}.test"


def database_url(database: str = DEFAULT_DATABASE) -> str:
    """The SQLAlchemy URL of a fixture database on the local PostgreSQL."""
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass(frozen=True)
class FixtureCA:
    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)

    @property
    def intermediate_pem(self) -> bytes:
        return self.intermediate.public_bytes(serialization.Encoding.PEM)


def _derived_key(label: str) -> ec.EllipticCurvePrivateKey:
    secret = int.from_bytes(hashlib.sha256(f"linkcert million {label}".encode()).digest())
    return ec.derive_private_key(secret % (2**255) + 1, ec.SECP256R1())


@cache
def ca() -> FixtureCA:
    """The fixture's CA: the same keys and names in every process and run."""
    root_key = _derived_key("root")
    intermediate_key = _derived_key("intermediate")
    # pki dates CAs from a day ago: a client trusts the root by its name and key, which are
    # the same in every run, so a root made by another process serves as well.
    root = pki.ca_certificate(
        f"{CA_NAME} root", root_key, path_length=1, lifetime=dt.timedelta(days=3650), serial=1
    )
    intermediate = pki.ca_certificate(
        f"{CA_NAME} intermediate",
        intermediate_key,
        issuer=root,
        issuer_key=root_key,
        path_length=0,
        lifetime=dt.timedelta(days=3650),
        serial=2,
    )
    return FixtureCA(root, intermediate, intermediate_key)


@cache
def leaf_keys() -> tuple[ec.EllipticCurvePrivateKey, ...]:
    return tuple(_derived_key(f"leaf {k}") for k in range(LEAF_KEYS))


@dataclass(frozen=True)
class Fixture:
    url: str
    n: int
    accounts: int

    @property
    def root_pem(self) -> bytes:
        return ca().root_pem

    def name(self, i: int) -> str:
        return name(i)

    def env(self) -> dict[str, str]:
        """The settings that open this store, as environment variables."""
        return {
            "LINKCERT_DATABASE_URL": self.url,
            "LINKCERT_MASTER_KEY": MASTER_KEY,
            "LINKCERT_TRACKING_KEY": TRACKING_KEY,
        }


# --- certificates ---------------------------------------------------------------------------


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8)
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def _read_tlv(data: bytes, at: int) -> tuple[int, int]:
    """(start of the body, end of the element) of the DER element at `at`."""
    length = data[at + 1]
    body = at + 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[body : body + count])
        body += count
    return body, body + length


def _utc_time(when: dt.datetime) -> bytes:
    return when.strftime("%y%m%d%H%M%SZ").encode("ascii")


class LeafFactory:
    """Leaf certificates made by patching a template's to-be-signed bytes."""

    def __init__(self, key_index: int) -> None:
        authority = ca()
        template = pki.leaf_certificate(
            leaf_keys()[key_index],
            [name(_TEMPLATE_NUMBER)],
            authority.intermediate,
            authority.intermediate_key,
            lifetime=_TEMPLATE_NOT_AFTER - _TEMPLATE_NOT_BEFORE,
            serial=_TEMPLATE_SERIAL,
            not_before=_TEMPLATE_NOT_BEFORE,
        )
        self._key = authority.intermediate_key
        self._tbs = template.tbs_certificate_bytes
        der = template.public_bytes(serialization.Encoding.DER)
        _, tbs_end = _read_tlv(der, _read_tlv(der, 0)[0])
        _, algorithm_end = _read_tlv(der, tbs_end)
        self._algorithm = der[tbs_end:algorithm_end]
        self._offsets = {
            "name": self._find(name(_TEMPLATE_NUMBER).encode("ascii")),
            "serial": self._find(_TEMPLATE_SERIAL.to_bytes(16)),
            "not_before": self._find(_utc_time(_TEMPLATE_NOT_BEFORE)),
            "not_after": self._find(_utc_time(_TEMPLATE_NOT_AFTER)),
        }
        self._ecdsa = ec.ECDSA(hashes.SHA256())

    def _find(self, part: bytes) -> int:
        at = self._tbs.find(part)
        if at < 0 or self._tbs.find(part, at + 1) >= 0:
            raise RuntimeError(f"the leaf template does not hold {part!r} exactly once")
        return at

    def make(self, i: int, not_before: dt.datetime, not_after: dt.datetime) -> bytes:
        """The DER certificate of domain `i`, valid from `not_before` to `not_after`."""
        tbs = bytearray(self._tbs)
        for field, value in (
            ("name", name(i).encode("ascii")),
            ("serial", serial(i).to_bytes(16)),
            ("not_before", _utc_time(not_before)),
            ("not_after", _utc_time(not_after)),
        ):
            at = self._offsets[field]
            tbs[at : at + len(value)] = value
        signature = self._key.sign(bytes(tbs), self._ecdsa)
        return _tlv(0x30, bytes(tbs) + self._algorithm + _tlv(0x03, b"\x00" + signature))


def serial(i: int) -> int:
    return _SERIAL_BASE | i


def _pem(der: bytes, label: str) -> str:
    text = base64.b64encode(der).decode("ascii")
    lines = "\n".join(text[k : k + 64] for k in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


@dataclass(frozen=True)
class _Row:
    i: int
    chain_pem: str
    key_encrypted: bytes
    fingerprint: str
    not_before: dt.datetime
    not_after: dt.datetime
    renew_at: dt.datetime


_factories: list[LeafFactory] = []


def _make_rows(job: tuple[int, int, float, int]) -> list[_Row]:
    """Certificates for domains `first` to `last` (inclusive), issued before `now`."""
    first, last, now_ts, seed = job
    if not _factories:
        _factories.extend(LeafFactory(k) for k in range(LEAF_KEYS))
    now = dt.datetime.fromtimestamp(now_ts, dt.UTC).replace(microsecond=0)
    keys = MasterKeys.parse(MASTER_KEY)
    key_pems = [pki.private_key_pem(key) for key in leaf_keys()]
    intermediate_pem = ca().intermediate_pem.decode("ascii")
    span = int(ISSUED_OVER.total_seconds())
    rows = []
    for i in range(first, last + 1):
        # Issue times spread evenly over the last 60 days, in an order unrelated to ids.
        age = (i * 2654435761 + seed) % span
        not_before = now - dt.timedelta(seconds=age)
        not_after = not_before + LIFETIME
        der = _factories[i % LEAF_KEYS].make(i, not_before, not_after)
        rows.append(
            _Row(
                i,
                _pem(der, "CERTIFICATE") + intermediate_pem,
                keys.encrypt(key_pems[i % LEAF_KEYS], cert_key_context(name(i))),
                hashlib.sha256(der).hexdigest(),
                not_before,
                not_after,
                plan_renewal(not_before, not_after, None, MIN_MARGIN),
            )
        )
    return rows


# --- the database ---------------------------------------------------------------------------


def create_database(database: str, *, replace: bool) -> str:
    """Create `database` on the local PostgreSQL (dropping it first if `replace`)."""
    if database in ("test", "postgres", "template0", "template1"):
        raise ValueError(f"the fixture never writes to the {database!r} database")
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if exists and replace:
            conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return database_url(database)


_COPIES = {
    "accounts": (
        "COPY accounts (id, name, contact_emails, dns_label, dcv_secret, tracking_domain_id,"
        " created_at) FROM STDIN"
    ),
    "domains": (
        "COPY domains (id, name, unicode_name, registrable, account_id, kind, proof, link_epoch,"
        " wanted, dns_state, cert_state, problems, next_attempt_at, attempts,"
        " current_certificate_id, dns_checked_at, delete_requested, created_at, updated_at)"
        " FROM STDIN"
    ),
    "certificates": (
        "COPY certificates (id, domain_id, chain_pem, key_encrypted, serial, issuer, not_before,"
        " not_after, fingerprint_sha256, source, private_ca, created_at, renew_at) FROM STDIN"
    ),
    "events": (
        "COPY events (id, domain_id, at, kind, dns_state, cert_state, message, detail) FROM STDIN"
    ),
}


def _jobs(n: int, now: float, seed: int) -> Iterator[tuple[int, int, float, int]]:
    for first in range(1, n + 1, CHUNK):
        yield first, min(first + CHUNK - 1, n), now, seed


def fill(
    url: str,
    n: int,
    *,
    accounts: int | None = None,
    processes: int | None = None,
    replace: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> Fixture:
    """Fill the database at `url` (created if missing; emptied and re-made if `replace`) with
    `n` secured domains and `accounts` accounts (default: one per domain)."""
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be between 1 and {MAX_N}")
    accounts = n if accounts is None else accounts
    if not 1 <= accounts <= n:
        raise ValueError("accounts must be between 1 and n")
    database = url.rsplit("/", 1)[1]
    create_database(database, replace=replace)
    store = Store(url)
    try:
        store.migrate()
    finally:
        store.close()
    now = time.time()
    started = time.perf_counter()
    issuer = ca().intermediate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    conns = {table: psycopg.connect(_libpq_url(url)) for table in _COPIES}
    try:
        for conn in conns.values():
            conn.execute("SET session_replication_role = replica")
            conn.execute("SET synchronous_commit = off")
        copies = {}
        stack = []
        for table, statement in _COPIES.items():
            cm = conns[table].cursor().copy(statement)
            copies[table] = cm.__enter__()
            stack.append(cm)
        _write_all(copies, n, accounts, now, seed, str(issuer), processes, started, progress)
        for cm in stack:
            cm.__exit__(None, None, None)
        for conn in conns.values():
            conn.commit()
    finally:
        for conn in conns.values():
            conn.close()
    _finish(url)
    if progress:
        print(f"filled {n} domains in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return Fixture(url, n, accounts)


def _write_all(
    copies: dict[str, psycopg.Copy],
    n: int,
    accounts: int,
    now: float,
    seed: int,
    issuer: str,
    processes: int | None,
    started: float,
    progress: bool,
) -> None:
    stamp = dt.datetime.fromtimestamp(now, dt.UTC)
    for a in range(1, accounts + 1):
        copies["accounts"].write_row(
            (
                a,
                f"Customer {a:0{NAME_DIGITS}d}",
                json.dumps([f"ops@c{a:0{NAME_DIGITS}d}.test"]),
                hashlib.sha256(f"label {a}".encode()).hexdigest()[:16],
                base64.b32encode(hashlib.sha256(f"dcv {a}".encode()).digest())
                .decode("ascii")
                .rstrip("=")
                .lower(),
                a,  # its first domain (domains are dealt out to accounts in turn)
                stamp - ISSUED_OVER - dt.timedelta(days=1),
            )
        )
    context = multiprocessing.get_context("fork")
    with context.Pool(processes or os.cpu_count() or 1) as pool:
        done = 0
        for rows in pool.imap(_make_rows, _jobs(n, now, seed)):
            for row in rows:
                _write_domain(copies, row, accounts, issuer)
            done += len(rows)
            if progress and done % 50_000 < CHUNK:
                rate = done / (time.perf_counter() - started)
                print(f"{done} domains, {rate:.0f}/s", file=sys.stderr)


def _write_domain(copies: dict[str, psycopg.Copy], row: _Row, accounts: int, issuer: str) -> None:
    i = row.i
    domain = name(i)
    issued = row.not_before + dt.timedelta(minutes=1)
    copies["domains"].write_row(
        (
            i,
            domain,
            domain,
            domain.split(".", 1)[1],
            (i - 1) % accounts + 1,
            "customer",
            "dns",
            0,
            True,
            "ok",
            "active",
            "[]",
            row.renew_at,
            0,
            i,
            row.not_before,
            False,
            row.not_before - dt.timedelta(minutes=5),
            issued,
        )
    )
    copies["certificates"].write_row(
        (
            i,
            i,
            row.chain_pem,
            row.key_encrypted,
            f"{serial(i):x}",
            issuer,
            row.not_before,
            row.not_after,
            row.fingerprint,
            "acme",
            False,
            issued,
            row.renew_at,
        )
    )
    copies["events"].write_row(
        (
            i,
            i,
            issued,
            "secured",
            "ok",
            "active",
            f"Certificate issued by {issuer}, valid until {row.not_after:%Y-%m-%d %H:%M} UTC.",
            json.dumps({"serial": f"{serial(i):x}"}),
        )
    )


def _finish(url: str) -> None:
    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        for table in ("accounts", "domains", "certificates", "events"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608
                f" (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
            )
        conn.execute("VACUUM ANALYZE")


def existing(url: str) -> Fixture:
    """The fixture already in the database at `url`."""
    with psycopg.connect(_libpq_url(url)) as conn:
        domains = conn.execute("SELECT count(*) FROM domains").fetchone()
        accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()
    if not domains or not domains[0] or not accounts:
        raise ValueError(f"no fixture in {url}: run python -m bench.million_fixture first")
    return Fixture(url, int(domains[0]), int(accounts[0]))


def database_bytes(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (database,)).fetchone()
    return int(row[0]) if row else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="domains (default 1,000,000)")
    parser.add_argument("--accounts", type=int, help="accounts (default: one per domain)")
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--processes", type=int, help="signing processes (default: all cores)")
    parser.add_argument(
        "--keep", action="store_true", help="add to an existing database instead of re-making it"
    )
    args = parser.parse_args(argv)
    url = database_url(args.database)
    started = time.perf_counter()
    fixture = fill(
        url,
        args.n,
        accounts=args.accounts,
        processes=args.processes,
        replace=not args.keep,
        progress=True,
    )
    seconds = time.perf_counter() - started
    size = database_bytes(url)
    print(
        json.dumps(
            {
                "database": args.database,
                "domains": fixture.n,
                "accounts": fixture.accounts,
                "seconds": round(seconds, 1),
                "database_bytes": size,
            }
        )
    )
    for key, value in fixture.env().items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
