"""Benchmark of the certificate retention: what deleting replaced certificates costs.

    python -m bench.certificate_retention [--n 100000] [--batch 500] [--explain]

Fills a PostgreSQL schema (migrated) with N secured domains, each with three certificates
and their finished ACME orders, as after two renewals: one replaced and expired 100 days ago
(past the 30-day retention), one replaced and still valid for 20 days, and the current one.
One domain in 20 has renewals failing: its current certificate expired 200 days ago (it must
stay, and the pass must go past it); one in 10 has an order that failed 150 days ago. Ids
follow time, as in the product. Rows are about the product's size (a 1.9 KB chain, a key
blob; the chain compresses, so no sizes are reported). Then one pass of `prune_certificates`
(30 days) deletes the N certificates past retention and their orders, then the failed orders
(looking at every order started over 30 days ago once); prints the time, the rate, the rows
left, and with `--explain` the plan of one batch's candidate query.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time

from sqlalchemy import text

from bench import lab
from linkcert.store import Store, utcnow
from linkcert.worker.retention import prune_certificates

FILL = """
INSERT INTO acme_accounts (id, directory_url, key_encrypted, created_at)
VALUES (1, 'https://ca.bench/dir', '\\x00', now());
INSERT INTO domains (id, name, unicode_name, registrable, kind, link_epoch, wanted, dns_state,
                     cert_state, problems, attempts, delete_requested, created_at, updated_at)
SELECT i, 'links.c' || i || '.test', 'links.c' || i || '.test', 'c' || i || '.test', 'customer',
       0, true, 'ok', 'active', '[]', 0, false, now(), now()
FROM generate_series(1, :n) AS i;
-- Ids in the order things happened, as in the product: the old certificates' orders
-- (d, started 190 days ago), the failed ones (n + f, 150 days), the replaced certificates'
-- (2n + d, 70 days), the current ones' (3n + d, 10 days); a certificate has its order's id.
INSERT INTO orders (id, domain_id, acme_account_id, status, info, key_encrypted, csr_pem,
                    created_at, updated_at, finished_at)
SELECT k * :n + d, d, 1, 'valid', '{"ca_choice": {"ca": "bench"}}',
       decode(repeat('ab', 180), 'hex'), repeat('C', 560),
       now() - (CASE k WHEN 0 THEN 190 WHEN 2 THEN 70 ELSE 10 END) * interval '1 day', now(),
       now() - (CASE k WHEN 0 THEN 190 WHEN 2 THEN 70 ELSE 10 END) * interval '1 day'
FROM generate_series(1, :n) AS d, (VALUES (0), (2), (3)) AS ks (k);
INSERT INTO orders (id, domain_id, acme_account_id, status, info, key_encrypted, csr_pem,
                    created_at, updated_at, finished_at)
SELECT :n + f, 10 * f, 1, 'invalid', '{}', decode(repeat('ab', 180), 'hex'),
       repeat('C', 560), now() - interval '150 days', now(), now() - interval '150 days'
FROM generate_series(1, :n / 10) AS f;
INSERT INTO certificates (id, domain_id, chain_pem, key_encrypted, serial, issuer, not_before,
                          not_after, fingerprint_sha256, order_id, source, private_ca,
                          created_at)
SELECT k * :n + d, d, repeat('M', 1900), decode(repeat('cd', 180), 'hex'),
       md5((k * :n + d)::text), 'Bench CA', now() - interval '150 days',
       CASE k
         WHEN 0 THEN now() - interval '100 days'
         WHEN 2 THEN now() + interval '20 days'
         ELSE CASE WHEN d % 20 = 0 THEN now() - interval '200 days'
                   ELSE now() + interval '80 days' END
       END,
       md5((k * :n + d)::text) || md5(d::text), k * :n + d, 'acme', false, now()
FROM generate_series(1, :n) AS d, (VALUES (0), (2), (3)) AS ks (k);
UPDATE domains SET current_certificate_id = 3 * :n + id;
SELECT setval(pg_get_serial_sequence('certificates', 'id'), 4 * :n);
SELECT setval(pg_get_serial_sequence('orders', 'id'), 4 * :n);
"""

CANDIDATES = """
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT certificates.id, certificates.not_after FROM certificates
WHERE certificates.not_after < now() - interval '30 days'
  AND NOT (EXISTS (SELECT 1 FROM domains WHERE domains.current_certificate_id = certificates.id))
ORDER BY certificates.not_after, certificates.id LIMIT :batch
"""


def sizes(store: Store) -> tuple[int, int]:
    with store.engine.connect() as connection:
        row = connection.execute(
            text("SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM orders)")
        ).one()
    return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args()
    print(f"# {platform.node()}, {utcnow():%Y-%m-%d %H:%M} UTC, n={args.n}, batch={args.batch}")
    with lab.postgres_schema("bench_certprune") as url:
        store = Store(url)
        store.migrate()
        started = time.perf_counter()
        with store.engine.begin() as connection:
            for statement in FILL.split(";\n"):
                if statement.strip():
                    connection.execute(text(statement), {"n": args.n})
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
        print(f"filled in {time.perf_counter() - started:.1f} s")
        before = sizes(store)
        print(f"before: {before[0]:,} certificates, {before[1]:,} orders")
        if args.explain:
            with store.engine.connect() as connection:
                for (line,) in connection.execute(text(CANDIDATES), {"batch": args.batch}):
                    print("   ", line)
        started = time.perf_counter()
        deleted = asyncio.run(prune_certificates(store, 30, batch=args.batch, pause=0))
        elapsed = time.perf_counter() - started
        after = sizes(store)
        print(
            f"pass: {deleted:,} certificates deleted in {elapsed:.2f} s "
            f"({deleted / elapsed:,.0f} a second; "
            f"{elapsed / max(deleted, 1) * args.batch * 1000:.0f} ms a batch of {args.batch})"
        )
        print(f"after: {after[0]:,} certificates, {after[1]:,} orders")
        started = time.perf_counter()
        again = asyncio.run(prune_certificates(store, 30, batch=args.batch, pause=0))
        print(
            f"second pass (nothing due): {again} deleted in {time.perf_counter() - started:.3f} s"
        )
        store.close()


if __name__ == "__main__":
    main()
