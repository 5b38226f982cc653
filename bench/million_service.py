"""The worker, the API, the console and the metrics at a million domains; storage per domain.

    python -m bench.million_fixture --n 1000000 --database linkcert_million_api   # once
    python -m bench.million_service --database linkcert_million_api [--skip-day] [--day-only]

Against a store filled by bench/million_fixture.py (PostgreSQL), measures:

- the worker's due-work tick (`claim_due(32)` + `next_due()`, bench/due_ticks.py) with its plans;
- `GET /api/v1/domains` pages, first, middle and last, with and without filters, through the
  whole application (httpx's ASGI transport, no socket), with each page query's plan;
- the console's list (`find_console_rows`) for each filter, its page after a middle name, a
  search, and the counts summary it reads once a minute;
- a /metrics scrape, cold (the first, which reads the summary) and warm, and the summary's
  background read;
- bytes per domain in PostgreSQL by table (heap, indexes, TOAST), and bytes per history event
  and per click/open event row (rows added, measured, then removed);
- a simulated day of renewals at a million 90-day certificates under Let's Encrypt's limits,
  with and without ARI's exemption: the worker's own claim, budget (RateLimiter, IssuanceBudget)
  and retry code over a day of virtual time, in a SQLite store of its own (`--day-only` runs
  just that, without the million store).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text, update

from bench import due_ticks
from linkcert import metrics
from linkcert.auth import create_token
from linkcert.ca_limits import LETS_ENCRYPT_LIMITS
from linkcert.config import Settings
from linkcert.domains import DomainQuery, find_domains
from linkcert.states import FailureClass
from linkcert.store import Certificate, Domain, Event, Store, utcnow
from linkcert.store.models import LinkEvent
from linkcert.testbed.statements import recorded_statements
from linkcert.web import create_app
from linkcert.web.filters import DomainFilter, find_console_rows, read_counts
from linkcert.worker import leases
from linkcert.worker.lifecycle import IssuanceFailure
from linkcert.worker.ratelimit import IssuanceBudget, RateLimiter
from linkcert.worker.schedule import retry_delay

DAY = 86400.0


def database_url(database: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"


def median_ms(action: Callable[[], object], repetitions: int, warmup: int = 2) -> float:
    times = []
    for round_ in range(warmup + repetitions):
        started = time.perf_counter()
        action()
        if round_ >= warmup:
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def explain(store: Store, statement: str, parameters: Any) -> list[str]:
    with store.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
        lines = [str(row[0]) for row in cursor.fetchall()]
        raw.rollback()
    return lines


# --- the worker's tick ------------------------------------------------------------------------


def tick(store: Store, n: int, repetitions: int) -> dict[str, Any]:
    due = due_ticks.count_due(store)
    cost = due_ticks.measure(store, 32, repetitions, n)
    plans = due_ticks.plans(store, 32, n)
    return {"due_now": due, **cost.__dict__, "plans": plans}


# --- the API's pages --------------------------------------------------------------------------


def api_pages(store: Store, repetitions: int) -> dict[str, Any]:
    settings = Settings(allow_test_domains=True)
    token, _ = create_token(store, None, "bench million")
    app = create_app(store, settings, rate_limit=None)
    with store.session() as session:
        names = session.scalars(select(Domain.name).order_by(Domain.name)).all()
        some_account = session.scalar(
            select(Domain.account_id).where(Domain.name == names[len(names) // 2])
        )
    middle = names[len(names) // 2]
    last_start = names[-51]
    # A rare state, to filter on: a few hundred domains waiting for the CA's budget.
    rare = names[:: len(names) // 300][:300]
    with store.session() as session:
        session.execute(
            update(Domain)
            .where(Domain.name.in_(rare))
            .values(failure_class=FailureClass.RATE_LIMITED)
            .execution_options(synchronize_session=False)
        )
    cases: list[tuple[str, DomainQuery, str, str]] = [
        ("no filter", DomainQuery(), "", ""),
        ("dns_state=ok", DomainQuery(dns_state="ok"), "dns_state=ok", ""),
        ("cert_state=active", DomainQuery(cert_state="active"), "cert_state=active", ""),
        (
            "failure_class=rate_limited (300 rows)",
            DomainQuery(failure_class="rate_limited"),
            "failure_class=rate_limited",
            "",
        ),
        (
            f"account_id={some_account}",
            DomainQuery(owner=some_account),
            f"account_id={some_account}",
            "",
        ),
        ("prefix=links.c05", DomainQuery(prefix="links.c05"), "prefix=links.c05", ""),
        (
            "dns_state=ok&prefix=links.c05",
            DomainQuery(dns_state="ok", prefix="links.c05"),
            "dns_state=ok&prefix=links.c05",
            "",
        ),
    ]
    rows: list[dict[str, Any]] = []
    plans: dict[str, list[str]] = {}

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for label, query, params, _ in cases:
                for position, after in (("first", ""), ("middle", middle), ("last", last_start)):
                    url = f"/api/v1/domains?limit=100&{params}"
                    if after:
                        url += f"&after={after}"
                    times = []
                    items = 0
                    for round_ in range(repetitions + 2):
                        started = time.perf_counter()
                        response = await client.get(url, headers=headers)
                        elapsed = (time.perf_counter() - started) * 1000
                        assert response.status_code == 200, response.text
                        if round_ >= 2:
                            times.append(elapsed)
                        items = len(response.json()["items"])
                    rows.append(
                        {
                            "filter": label,
                            "page": position,
                            "items": items,
                            "ms": round(statistics.median(times), 1),
                        }
                    )
                with recorded_statements(store, this_thread=False) as seen:
                    find_domains(store, after=middle, limit=101, query=query)
                statement, parameters = next(
                    (s, p) for s, p in seen if s.lstrip().startswith("SELECT domains")
                )
                plans[label] = explain(store, statement, parameters)

    asyncio.run(run())
    return {"pages": rows, "plans": plans}


# --- the console ------------------------------------------------------------------------------


def console(store: Store, repetitions: int) -> dict[str, Any]:
    now = utcnow()
    with store.session() as session:
        count = session.scalar(select(func.count()).select_from(Domain)) or 0
        middle = session.scalar(select(Domain.name).order_by(Domain.name).offset(count // 2))
    results: dict[str, float] = {}
    for which in DomainFilter:
        results[f"{which.value}, first page"] = median_ms(
            functools.partial(find_console_rows, store, which, "", now), repetitions
        )
    results["all, page after the middle name"] = median_ms(
        lambda: find_console_rows(store, DomainFilter.ALL, "", now, after=middle or ""),
        repetitions,
    )
    results["search (a name's digits)"] = median_ms(
        lambda: find_console_rows(store, DomainFilter.ALL, "0123456", now), 3, warmup=1
    )
    results["counts summary (background, once a minute)"] = median_ms(
        lambda: read_counts(store, now), 3, warmup=1
    )
    results.update(console_pages(store, middle or "", repetitions))
    return {k: round(v, 1) for k, v in results.items()}


def console_pages(store: Store, middle: str, repetitions: int) -> dict[str, float]:
    """Whole console pages (GET /console ...) as an operator's browser asks for them, the
    counts summary warm (read by a first load that is not timed)."""
    import re

    token, _ = create_token(store, None, "bench console")
    app = create_app(store, Settings(allow_test_domains=True), rate_limit=None)
    base = "http://127.0.0.1"
    out: dict[str, float] = {}

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            form = await client.get("/login")
            found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert found is not None
            answer = await client.post(
                "/login",
                data={"token": token, "csrf_token": found.group(1)},
                headers={"Origin": base},
            )
            assert answer.status_code == 303, answer.text
            await client.get("/console")  # reads the counts summary
            for label, url in (
                ("page GET /console", "/console"),
                ("page GET /console?after=<middle name>", f"/console?after={middle}"),
                ("page GET /console?filter=failing", "/console?filter=failing"),
                ("page GET /console?filter=expiring", "/console?filter=expiring"),
            ):
                times = []
                for round_ in range(repetitions + 2):
                    started = time.perf_counter()
                    response = await client.get(url)
                    assert response.status_code == 200, response.status_code
                    if round_ >= 2:
                        times.append((time.perf_counter() - started) * 1000)
                out[label] = statistics.median(times)

    asyncio.run(run())
    return out


# --- /metrics ---------------------------------------------------------------------------------


def scrape(store: Store, repetitions: int) -> dict[str, Any]:
    registry = metrics.registry_for(store)
    with recorded_statements(store, this_thread=False) as cold_statements:
        started = time.perf_counter()
        metrics.render(registry)
        cold = (time.perf_counter() - started) * 1000
    with recorded_statements(store, this_thread=False) as warm_statements:
        warm = median_ms(lambda: metrics.render(registry), repetitions)
    summary = median_ms(lambda: metrics.read_snapshot(store, utcnow()), 3, warmup=1)
    return {
        "cold_scrape_ms": round(cold, 1),
        "cold_statements": len(cold_statements),
        "warm_scrape_ms": round(warm, 2),
        "warm_statements": len(warm_statements),
        "summary_read_ms": round(summary, 1),
    }


# --- storage ----------------------------------------------------------------------------------


TABLES = ("domains", "certificates", "accounts", "events", "link_events", "rate_buckets")


def storage(store: Store, n: int) -> dict[str, Any]:
    with store.engine.connect() as conn:
        rows = {}
        for table in TABLES:
            sizes = (
                "SELECT pg_relation_size(CAST(:t AS regclass)),"
                " pg_indexes_size(CAST(:t AS regclass)),"
                " pg_total_relation_size(CAST(:t AS regclass)), "
            )
            counted = f"(SELECT count(*) FROM {table})"  # noqa: S608 (names from TABLES)
            heap, indexes, total, count = conn.execute(text(sizes + counted), {"t": table}).one()
            rows[table] = {
                "heap": int(heap),
                "indexes": int(indexes),
                "toast": int(total) - int(heap) - int(indexes),
                "total": int(total),
                "rows": max(0, int(count)),
            }
        database = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
        index_sizes = {
            name: int(size)
            for name, size in conn.execute(
                text(
                    "SELECT indexrelname, pg_relation_size(indexrelid) FROM pg_stat_user_indexes "
                    "WHERE relname = 'domains' ORDER BY 2 DESC"
                )
            )
        }
    per_domain = {t: round(v["total"] / n, 1) for t, v in rows.items()}
    return {
        "tables": rows,
        "per_domain": per_domain,
        "database_bytes": int(database or 0),
        "domain_indexes": index_sizes,
    }


def row_growth(store: Store, rows: int = 200_000) -> dict[str, float]:
    """Bytes each new history event and click/open event row adds (heap, indexes, TOAST),
    from adding `rows` realistic rows and measuring; they are deleted again afterwards."""
    now = utcnow()
    out: dict[str, float] = {}
    with store.session() as session:
        domain_id, domain_name, account_id = session.execute(
            select(Domain.id, Domain.name, Domain.account_id).limit(1)
        ).one()
    specs: list[tuple[str, Any, Callable[[int], dict[str, Any]]]] = [
        (
            "events",
            Event,
            lambda i: {
                "domain_id": domain_id,
                "at": now,
                "kind": "renewed",
                "dns_state": "ok",
                "cert_state": "active",
                "message": f"A new certificate for {domain_name} is in place (serial 0{i:015x}).",
                "detail": {"serial": f"0{i:015x}", "not_after": now.isoformat()},
            },
        ),
        (
            "link_events",
            LinkEvent,
            lambda i: {
                "domain": domain_name,
                "account_id": account_id,
                "kind": "click",
                "data": b"msg=8f3a21;rcpt=1742",
                "link_id": 10_000_000 + i,
                "destination": f"https://shop.example/products/{i % 5000}?utm_source=email",
                "at": now,
                "minted_at": int(now.timestamp()) - 3600,
                "client_ip": "203.0.113.0",
                "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) "
                "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "machine": None,
                "token_version": 2,
                "epoch": 0,
            },
        ),
    ]
    for table, model, make in specs:
        with store.engine.connect() as conn:
            size = text("SELECT pg_total_relation_size(CAST(:t AS regclass))")
            before = conn.execute(size, {"t": table}).scalar()
            top = conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar()  # noqa: S608
        for start in range(0, rows, 10_000):
            with store.session() as session:
                session.execute(insert(model), [make(i) for i in range(start, start + 10_000)])
        with store.engine.connect() as conn:
            after = conn.execute(size, {"t": table}).scalar()
        out[table] = round((int(after or 0) - int(before or 0)) / rows, 1)
        with store.session() as session:
            session.execute(text(f"DELETE FROM {table} WHERE id > :top"), {"top": top})  # noqa: S608
    return out


# --- a simulated day of renewals --------------------------------------------------------------


@dataclass
class DayResult:
    label: str
    falling_due: int
    renewed: int = 0
    refused_passes: int = 0
    backlog_at_end: int = 0
    renewed_by_hour: list[int] = field(default_factory=list)
    longest_wait_hours: float = 0.0
    wall_seconds: float = 0.0


def simulate_day(
    workdir: Path,
    *,
    fleet: int = 1_000_000,
    lifetime_days: float = 90,
    ari: bool,
    label: str,
    batch: int = 64,
) -> DayResult:
    """One day of virtual time: the renewals of a day at `fleet` certificates (renewed when a
    third of the lifetime is left) fall due evenly; a worker claims due domains as the worker
    does and asks the budget for each, under Let's Encrypt's limits. A granted order counts as
    renewed at once (the CA's side is not what is simulated); a refused one is rescheduled with
    the worker's own retry delay, at the turn the budget gave it."""
    started = time.perf_counter()
    renew_after = lifetime_days * 2 / 3
    per_day = round(fleet / renew_after)
    store = Store(f"sqlite:///{workdir / f'day-{label}.sqlite3'}")
    store.migrate()
    clock = [dt.datetime(2027, 1, 4, tzinfo=dt.UTC)]
    t0 = clock[0]
    spacing = DAY / per_day
    with store.session() as session:
        session.execute(
            insert(Domain),
            [
                {
                    "id": i + 1,
                    "name": f"links.c{i:07d}.test",
                    "unicode_name": f"links.c{i:07d}.test",
                    "registrable": f"c{i:07d}.test",
                    "dns_state": "ok",
                    "cert_state": "active",
                    "next_attempt_at": t0 + dt.timedelta(seconds=i * spacing),
                }
                for i in range(per_day)
            ],
        )
        session.execute(
            insert(Certificate),
            [
                {
                    "id": i + 1,
                    "domain_id": i + 1,
                    "chain_pem": "",
                    "serial": str(i),
                    "issuer": "sim",
                    "not_before": t0 - dt.timedelta(days=renew_after),
                    "not_after": t0 + dt.timedelta(days=lifetime_days - renew_after),
                    "fingerprint_sha256": "0" * 64,
                }
                for i in range(per_day)
            ],
        )
        session.execute(update(Domain).values(current_certificate_id=Domain.id))
    limiter = RateLimiter(store, LETS_ENCRYPT_LIMITS, clock=lambda: clock[0])
    budget = IssuanceBudget(limiter)
    result = DayResult(label, per_day, renewed_by_hour=[0] * 24)
    end = t0 + dt.timedelta(days=1)
    far = end + dt.timedelta(days=365)
    while clock[0] < end:
        now = clock[0]
        ids = leases.claim_due(store, "sim", now, batch)
        if not ids:
            upcoming = leases.next_due(store, now)
            if upcoming is None or upcoming >= end:
                break
            clock[0] = max(upcoming, now + dt.timedelta(milliseconds=1))
            continue
        for domain_id in ids:
            try:
                budget.before_new_order(domain_id, 1, exempt=ari)
            except IssuanceFailure as failure:
                result.refused_passes += 1
                delay = retry_delay(FailureClass.RATE_LIMITED, 1, failure.retry_after)
                later = now + delay
                with store.session() as session:
                    session.execute(
                        update(Domain)
                        .where(Domain.id == domain_id)
                        .values(lease_owner=None, lease_until=None, next_attempt_at=later)
                    )
                continue
            result.renewed += 1
            hour = min(23, int((now - t0).total_seconds() // 3600))
            result.renewed_by_hour[hour] += 1
            with store.session() as session:
                session.execute(
                    update(Domain)
                    .where(Domain.id == domain_id)
                    .values(lease_owner=None, lease_until=None, next_attempt_at=far)
                )
            wait = (now - (t0 + dt.timedelta(seconds=(domain_id - 1) * spacing))).total_seconds()
            result.longest_wait_hours = max(result.longest_wait_hours, wait / 3600)
    with store.session() as session:
        result.backlog_at_end = int(
            session.scalar(select(func.count()).where(Domain.next_attempt_at < far)) or 0
        )
    store.close()
    result.wall_seconds = round(time.perf_counter() - started, 1)
    return result


def arithmetic(fleet: int = 1_000_000) -> list[dict[str, Any]]:
    """How many renewals a day a fleet needs, and what Let's Encrypt's new-orders limit lets
    one ACME account place, per certificate lifetime."""
    orders = LETS_ENCRYPT_LIMITS["new_orders"]
    per_day_budget = DAY / orders.refill_seconds
    out = []
    for lifetime in (90, 64, 45):
        renew_after = lifetime * 2 / 3
        needed = fleet / renew_after
        out.append(
            {
                "lifetime_days": lifetime,
                "renew_every_days": round(renew_after, 1),
                "renewals_per_day": round(needed),
                "orders_per_day_allowed": round(per_day_budget),
                "fraction_that_fits": round(per_day_budget / needed, 4),
                "fleet_one_account_can_keep": round(per_day_budget * renew_after),
                "accounts_needed_without_ari": -(-round(needed) // round(per_day_budget)),
            }
        )
    return out


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", default="linkcert_million_api")
    parser.add_argument("--repetitions", type=int, default=20)
    parser.add_argument("--skip-day", action="store_true")
    parser.add_argument("--day-only", action="store_true")
    parser.add_argument(
        "--only", default="", help="comma-separated: tick,api,console,scrape,storage,growth"
    )
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"when": utcnow().isoformat(), "load": os.getloadavg()}
    if not args.day_only:
        store = Store(database_url(args.database))
        with store.session() as session:
            n = int(session.scalar(select(func.count()).select_from(Domain)) or 0)
        report["domains"] = n
        wanted = set(filter(None, args.only.split(","))) or {
            "tick",
            "api",
            "console",
            "scrape",
            "storage",
            "growth",
        }
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("storage", lambda: storage(store, n)),
            ("tick", lambda: tick(store, n, 50)),
            ("api", lambda: api_pages(store, args.repetitions)),
            ("console", lambda: console(store, args.repetitions)),
            ("scrape", lambda: scrape(store, args.repetitions)),
            ("growth", lambda: row_growth(store)),
        ]
        for name, step in steps:
            if name in wanted:
                started = time.perf_counter()
                report[name] = step()
                print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        store.close()
    report["arithmetic"] = arithmetic()
    if not args.skip_day:
        with tempfile.TemporaryDirectory(prefix="bench-day-") as tmp:
            report["day"] = [
                simulate_day(Path(tmp), ari=False, label="without ARI").__dict__,
                simulate_day(Path(tmp), ari=True, label="ARI renewals (exempt)").__dict__,
            ]
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
