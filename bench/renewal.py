"""Benchmark of renewal scheduling: what finding the due work costs as the fleet grows.

    python -m bench.renewal [--sizes 1000,10000,100000] [--engines sqlite,postgres]
                            [--due 50] [--limit 32] [--repetitions 50] [--explain]
                            [--wave 1000]

Fills a store with N secured domains (`--due` of them due now, the rest over the next 60 days)
and times what one worker tick asks of the store: `claim_due(limit)` then `next_due()`, median
over `--repetitions` ticks; and the edge's once-a-second look for new certificates. The costs
should follow the due work, so be flat across N. With `--explain`, prints the plans of the
statements at the largest N.

Then (`--wave N`, 0 to skip) a wave of N renewals falling due at once against Pebble, under
the rate limits of the `pebble-bench` preset: see `bench/renewal_wave.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench import due_fill, due_ticks, lab, renewal_wave
from linkcert.store import Store, utcnow


@contextlib.contextmanager
def empty_store(engine: str, workdir: Path) -> Iterator[Store]:
    with contextlib.ExitStack() as stack:
        if engine == "sqlite":
            url = f"sqlite:///{workdir / 'renewal.sqlite3'}"
        else:
            url = stack.enter_context(lab.postgres_schema("bench_renewal"))
        store = Store(url)
        stack.callback(store.close)
        store.migrate()
        yield store


def tick_costs(arguments: argparse.Namespace) -> None:
    sizes = [int(s) for s in arguments.sizes.split(",") if s]
    engines = [e for e in arguments.engines.split(",") if e]
    print(
        f"One worker tick: claim_due(limit={arguments.limit}) + next_due(), "
        f"{arguments.due} domains due, median of {arguments.repetitions} ticks"
    )
    print(
        f"{'engine':<9} {'domains':>8} {'fill s':>7} {'claimed':>7} {'claim ms':>9} "
        f"{'next ms':>8} {'tick ms':>8} {'p90 ms':>7} {'edge ms':>8}"
    )
    for engine in engines:
        for size in sizes:
            with (
                tempfile.TemporaryDirectory(prefix="bench-renewal-") as tmp,
                empty_store(engine, Path(tmp)) as store,
            ):
                started = time.perf_counter()
                due_fill.fill(store, size, arguments.due, utcnow())
                filled = time.perf_counter() - started
                cost = due_ticks.measure(store, arguments.limit, arguments.repetitions, size)
                print(
                    f"{engine:<9} {size:>8,} {filled:>7.1f} {cost.claimed:>7} "
                    f"{cost.claim_ms:>9.2f} {cost.next_due_ms:>8.2f} {cost.tick_ms:>8.2f} "
                    f"{cost.p90_tick_ms:>7.2f} {cost.edge_ms:>8.2f}",
                    flush=True,
                )
                if arguments.explain and size == max(sizes):
                    for plan in due_ticks.plans(store, arguments.limit, size):
                        print("  " + plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--due", type=int, default=50, help="domains due now")
    parser.add_argument("--limit", type=int, default=32, help="claim_due limit (free slots)")
    parser.add_argument("--repetitions", type=int, default=50)
    parser.add_argument("--explain", action="store_true", help="print query plans")
    parser.add_argument("--wave", type=int, default=1000, help="renewal wave size, 0 to skip")
    arguments = parser.parse_args()
    lab.exit_on_sigterm()
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"Python {sys.version.split()[0]}"
    )
    if arguments.sizes:
        tick_costs(arguments)
    if arguments.wave > 0:
        renewal_wave.run(arguments.wave)


if __name__ == "__main__":
    main()
