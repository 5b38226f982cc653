"""Benchmark of the DNS readiness check: checks per second and DNS queries per check.

    python -m bench.dns_check [--names 1000] [--concurrency 50]

Checks N distinct customer names against a LocalDNSServer running in its own process on
loopback (so the server does not share an interpreter with the checks), through one shared
resolver as the lifecycle worker would use it. The names mix the cases met in practice: CNAME to
the platform with no CAA anywhere, CAA at the registrable domain allowing or forbidding Let's
Encrypt, CAA at the name of a flattened apex, and names pointing elsewhere.

Queries are counted by the server. They are compared with the minimum the RFCs allow a check
without a cache: one address lookup (two when A and AAAA must be compared with the edge
addresses), plus the RFC 8659 climb, which asks for CAA at the name, then at each parent in
turn, up to the first non-empty set (down to the top-level domain when there is none).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection

from linkcert.dns import CheckConfig, Resolver, check_domain
from linkcert.names import NamePolicy
from linkcert.testbed.localdns import LocalDNSServer

TARGET = "track.platform.example"
EDGE = "192.0.2.10"
TOP_LEVEL_DOMAINS = ("com", "net", "org", "co.uk")

Record = tuple[str, str, str]


@dataclass(frozen=True)
class Case:
    name: str
    records: tuple[Record, ...]
    expected_state: str
    rfc_minimum: int  # DNS queries a check of this name needs at least, without a cache


def make_case(index: int) -> Case:
    tld = TOP_LEVEL_DOMAINS[index % len(TOP_LEVEL_DOMAINS)]
    shop = f"shop{index:05d}.{tld}"
    name = f"links.{shop}"
    labels_to_tld = name.count(".") + 1  # CAA lookups of a climb that finds no set at all
    kind = index % 10
    if kind < 5:  # the common case: CNAME to us, no CAA anywhere
        return Case(name, ((name, "CNAME", TARGET),), "ok", 1 + labels_to_tld)
    if kind < 7:  # CAA at the registrable domain, allowing Let's Encrypt
        records = ((name, "CNAME", TARGET), (shop, "CAA", '0 issue "letsencrypt.org"'))
        return Case(name, records, "ok", 1 + 2)
    if kind == 7:  # CAA at the registrable domain, for another CA only
        records = ((name, "CNAME", TARGET), (shop, "CAA", '0 issue "digicert.com"'))
        return Case(name, records, "caa_blocked", 1 + 2)
    if kind == 8:  # a flattened name on our edge address, with its own CAA set
        records = ((name, "A", EDGE), (name, "CAA", '0 issue "letsencrypt.org"'))
        return Case(name, records, "ok", 2 + 1)
    # CNAME to a CDN: the verdict needs the A lookup and the climb (no set anywhere)
    records = ((name, "CNAME", f"{shop}.cdn.example"), (f"{shop}.cdn.example", "A", "198.51.100.7"))
    return Case(name, records, "points_elsewhere", 1 + labels_to_tld)


def serve(records: list[Record], control: Connection) -> None:
    """Child process: serve the records, report the address, then the query count on request."""
    with LocalDNSServer() as server:
        server.add(TARGET, "A", EDGE)
        for name, rtype, data in records:
            server.add(name, rtype, data)
        server.reset_query_count()
        control.send(server.nameserver)
        while control.recv() == "count":
            control.send(server.query_count)


async def run_checks(
    cases: list[Case], nameserver: str, concurrency: int
) -> tuple[float, list[float], Counter[str], int]:
    config = CheckConfig(
        cname_targets=(TARGET,),
        edge_addresses=(EDGE,),
        name_policy=NamePolicy(allow_test_domains=True),
    )
    resolver = Resolver([nameserver], timeout=5.0)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    states: Counter[str] = Counter()
    unexpected = 0

    async def one(case: Case) -> None:
        nonlocal unexpected
        async with gate:
            started = time.perf_counter()
            result = await check_domain(case.name, config, resolver)
            latencies.append(time.perf_counter() - started)
        states[result.state.value] += 1
        unexpected += result.state.value != case.expected_state

    started = time.perf_counter()
    await asyncio.gather(*(one(case) for case in cases))
    return time.perf_counter() - started, latencies, states, unexpected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--names", type=int, default=1000, help="distinct names to check")
    parser.add_argument("--concurrency", type=int, default=50, help="checks in flight at once")
    arguments = parser.parse_args()
    cases = [make_case(index) for index in range(arguments.names)]
    records = [record for case in cases for record in case.records]

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=serve, args=(records, theirs), daemon=True)
    child.start()
    try:
        if not ours.poll(30):
            raise SystemExit("the DNS server process did not start within 30 s")
        nameserver = ours.recv()
        elapsed, latencies, states, unexpected = asyncio.run(
            run_checks(cases, nameserver, arguments.concurrency)
        )
        ours.send("count")
        queries = ours.recv()
    finally:
        if child.is_alive():
            ours.send("stop")
        child.join(timeout=10)

    count = len(cases)
    minimum = sum(case.rfc_minimum for case in cases) / count
    per_check = queries / count
    ordered = sorted(latencies)
    p95 = ordered[int(0.95 * (count - 1))]
    print(f"DNS readiness check: {count} distinct names, {arguments.concurrency} in flight,")
    print(f"  LocalDNSServer in its own process at {nameserver}, one shared resolver")
    print(
        f"checks:  {count / elapsed:,.0f} checks/s ({elapsed:.2f} s in all; per check "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms)"
    )
    print(f"states:  {', '.join(f'{s} {n}' for s, n in sorted(states.items()))}", end="")
    print(f" ({unexpected} unexpected)")
    print(f"queries: {queries} received by the server = {per_check:.2f} per check")
    print(
        f"RFC minimum without a cache: {minimum:.2f} per check (1 address lookup, 2 where A "
        "and AAAA are compared with the edge; plus CAA at the name and each parent up to the "
        "first non-empty set, or down to the TLD)"
    )
    print(f"ratio:   {per_check / minimum:.2f} of that minimum")


if __name__ == "__main__":
    main()
