"""Tracked links at campaign scale: minting offline, minting through the batch API, and the
edge's clicks per second with click events recorded and without.

    python -m bench.links                       # everything (PostgreSQL at 127.0.0.1:5432/test)
    python -m bench.links --only mint           # offline mints per second on one core
    python -m bench.links --only batch --batches 20 --databases sqlite
    python -m bench.links --only edge --seconds 10

- mint: `linkcert.tracking.Minter` in a child process pinned to one core, 300,000 links with
  60-character destinations and 40 bytes of data each (target: 200,000 a second).
- batch: `POST /api/v1/links/batch` with 10,000 links a request, end to end: a real uvicorn
  server in a child process on SQLite or PostgreSQL, an HTTP client in this one, links per
  second of wall time including JSON both ways (target: 20,000 a second).
- edge: keep-alive clicks per second (bench/edge_micro.py's client, tokens of version 2 with
  data) against the same edge with recording on and off (target: at least 0.9x). On, the
  edge appends each event to its spool and the event writer, a process of its own as with
  `linkcert edge`, inserts them into SQLite or PostgreSQL; its CPU is counted apart, and every
  answered click is checked to be in the store at the end.

The machine may be shared: each figure is the best of a few rounds, and the ratios are taken
between runs made one after the other (the edge's also per round, with their median).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from linkcert.testbed.waiting import free_port

SECRET = "bench-links-secret-" + "k" * 40
DOMAIN = "links.bench.test"
PG_URL = os.environ.get(
    "LINKCERT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


# Offline minting -----------------------------------------------------------------------


def _mint_child(count: int) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    from linkcert.tracking import Minter, tracking_key_from_secret

    minter = Minter(tracking_key_from_secret(SECRET), DOMAIN)
    urls = [
        f"https://shop.example.com/p/{n:05d}?utm_source=email&utm_campaign=spring"
        for n in range(1000)
    ]
    data = [f"msg={n:012d};rcpt={n * 7:010d};c=42".encode() for n in range(1000)]
    best = best_cpu = float("inf")
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        url = minter.url
        for number in range(count):
            url(urls[number % 1000], data[number % 1000])
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    print(json.dumps({"mints_per_second": count / best, "mints_per_cpu_second": count / best_cpu}))


def bench_mint(count: int) -> float:
    output = subprocess.run(
        [sys.executable, "-m", "bench.links", "--mint-child", str(count)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    rate, per_cpu = float(figures["mints_per_second"]), float(figures["mints_per_cpu_second"])
    print(
        f"offline mints on one core: {rate:,.0f}/s of wall time, {per_cpu:,.0f} per CPU-second "
        "(target 200,000)"
    )
    return rate


# The batch API ---------------------------------------------------------------------------


def _prepare(database_url: str) -> str:
    """Migrate, make an account with its domain and a token; return the token."""
    from sqlalchemy import select

    from linkcert.auth import create_token
    from linkcert.domains import create_account, set_tracking_domain
    from linkcert.names import NamePolicy
    from linkcert.ownership_store import settle
    from linkcert.states import DnsState
    from linkcert.store import Account, Domain, Store, utcnow
    from linkcert.worker.lifecycle import DnsVerdict

    store = Store(database_url)
    store.migrate()
    account = create_account(store, "bench", ["ops@bench.test"])
    set_tracking_domain(store, account.id, DOMAIN, NamePolicy(allow_test_domains=True))
    # Links are made only on proven names: settle it as the worker does when DNS names the
    # account.
    with store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == DOMAIN)).one()
        label = session.get(Account, account.id).dns_label  # type: ignore[union-attr]
        verdict = DnsVerdict(DnsState.OK, labels=frozenset({label}), shared=False)
        assert settle(session, domain, verdict, utcnow()), "the bench domain was not proven"
    token, _ = create_token(store, account.id, "bench")
    store.close()
    return token


def _api_child(database_url: str, port: int) -> None:
    import uvicorn
    from pydantic import SecretStr

    from linkcert.api import create_app
    from linkcert.config import Settings
    from linkcert.store import Store

    settings = Settings(allow_test_domains=True, tracking_key=SecretStr(SECRET))
    app = create_app(Store(database_url), settings, rate_limit=None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def _database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'bench.sqlite3'}"
        return
    from sqlalchemy import create_engine, text

    schema = "bench_" + uuid.uuid4().hex[:10]
    engine = create_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def bench_batch(kind: str, batches: int, size: int) -> float:
    import httpx

    with _database(kind) as url:
        token = _prepare(url)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.links", "--api-child", url, str(port)]
        )
        try:
            client = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=120,
            )
            for _ in range(200):
                try:
                    client.get("/api/v1/me")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            body = json.dumps(
                {
                    "links": [
                        {
                            "url": f"https://shop.example.com/p/{n}?utm_source=email",
                            "data": f"msg={n:012d};rcpt={n * 7:010d};c=42",
                        }
                        for n in range(size)
                    ]
                }
            ).encode()
            headers = {"Content-Type": "application/json"}
            answer = client.post("/api/v1/links/batch", content=body, headers=headers)
            assert answer.status_code == 201, answer.text[:300]
            started = time.perf_counter()
            for _ in range(batches):
                answer = client.post("/api/v1/links/batch", content=body, headers=headers)
                assert answer.status_code == 201, answer.text[:300]
                assert len(answer.json()["links"]) == size
            elapsed = time.perf_counter() - started
            client.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    rate = batches * size / elapsed
    print(
        f"batch API on {kind}: {rate:,.0f} links/s end to end "
        f"({batches} requests of {size:,} links in {elapsed:.1f} s; target 20,000/s)"
    )
    return rate


# The edge with events on and off ---------------------------------------------------------


def bench_edge(seconds: float, rounds: int, database: str = "sqlite") -> tuple[float, float]:
    """The edge with recording off, then spooling events that the event writer (a process of
    its own, its CPU counted apart) inserts into `database` (sqlite or postgresql), `rounds`
    times each, one after the other."""
    return _bench_edge(seconds, rounds, database)


def _bench_edge(seconds: float, rounds: int, database: str) -> tuple[float, float]:
    best = {True: 0.0, False: 0.0}
    per_cpu = {True: 0.0, False: 0.0}
    wall_ratios: list[float] = []
    cpu_ratios: list[float] = []
    writer_rates: list[float] = []
    for _ in range(rounds):
        figures: dict[bool, tuple[float, float]] = {}
        for events in (False, True):
            command = [
                sys.executable,
                "-m",
                "bench.edge_micro",
                "--only",
                "requests",
                "--seconds",
                str(seconds),
                "--server-loop",
                "uvloop",
                "--distinct",
                "1000",
            ]
            command += ["--recording", "spool" if events else "off"]
            # A fresh schema (or file) per run: every run starts with an empty events table.
            with _database(database) as run_url:
                environment = {**os.environ, "LINKCERT_BENCH_EVENTS_DB": run_url}
                output = subprocess.run(
                    command, check=True, capture_output=True, text=True, env=environment
                ).stdout
            rate = float(output.split("):", 1)[1].split("/s", 1)[0].replace(",", ""))
            cpu_rate = float(
                output.split(" CPU-s, ", 1)[1].split(" requests", 1)[0].replace(",", "")
            )
            if events:
                writer = output.split("event writer: ", 1)[1]
                writer_rates.append(
                    float(
                        writer.split(" CPU-s during the run, ", 1)[1]
                        .split(" events", 1)[0]
                        .replace(",", "")
                    )
                )
                stored, answered = (
                    int(part.replace(",", ""))
                    for part in re.findall(r"([\d,]+) events in the store for ([\d,]+)", writer)[0]
                )
                assert stored >= answered, f"{stored} events stored for {answered} answers"
            figures[events] = (rate, cpu_rate)
            best[events] = max(best[events], rate)
            per_cpu[events] = max(per_cpu[events], cpu_rate)
        wall_ratios.append(figures[True][0] / figures[False][0])
        cpu_ratios.append(figures[True][1] / figures[False][1])
    print(
        f"edge keep-alive clicks, events spooled and written to {database} by the event writer "
        f"against recording off, {rounds} rounds: per edge CPU-second best "
        f"{per_cpu[True]:,.0f} against {per_cpu[False]:,.0f}: "
        f"{per_cpu[True] / per_cpu[False]:.2f}x,"
        f" per round median {statistics.median(cpu_ratios):.2f}x"
        f" ({min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}); wall best {best[True]:,.0f}/s against "
        f"{best[False]:,.0f}/s: {best[True] / best[False]:.2f}x, per round median "
        f"{statistics.median(wall_ratios):.2f}x ({min(wall_ratios):.2f}-{max(wall_ratios):.2f}) "
        f"(target at least 0.9x); the writer: median {statistics.median(writer_rates):,.0f} "
        f"events per writer CPU-second ({min(writer_rates):,.0f}-{max(writer_rates):,.0f})"
    )
    return best[True], best[False]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", choices=["mint", "batch", "edge"])
    parser.add_argument("--mints", type=int, default=300_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mint-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--api-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mint_child:
        _mint_child(args.mint_child)
        return
    if args.api_child:
        _api_child(args.api_child[0], int(args.api_child[1]))
        return
    if args.only in (None, "mint"):
        bench_mint(args.mints)
    if args.only in (None, "batch"):
        for kind in args.databases.split(","):
            bench_batch(kind.strip(), args.batches, args.batch_size)
    if args.only in (None, "edge"):
        for kind in args.databases.split(","):
            bench_edge(args.seconds, args.rounds, kind.strip())


if __name__ == "__main__":
    main()
