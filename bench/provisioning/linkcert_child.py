"""The linkcert process of the benchmark: worker and edge, as `linkcert serve` runs them.

Run by `LinkcertSide` as `python -m bench.provisioning.linkcert_child`. It reads its settings
as the first JSON line on stdin, then commands, one JSON object a line:

    {"op": "accounts", "names": [...]}   create one customer account per name (not timed);
                                         the reply gives each account's DNS label and
                                         its delegation label for the name
    {"op": "save", "names": [...]}       save each name as its account's tracking domain,
                                         waking the worker after each, as the API would
    {"op": "quit"}

and writes events as JSON lines on stdout: `ready`, `accounts`, `saved`, and `served` with the
name, as soon as the edge holds a certificate for it. End of input stops it cleanly too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from linkcert.config import Settings
from linkcert.domains import create_account, set_tracking_domain
from linkcert.edge import CertificateCache
from linkcert.names import NamePolicy
from linkcert.ownership import dcv_label
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Store

POLICY = NamePolicy(allow_test_domains=True)
# How often the edge's certificate cache is looked at for new names: the resolution of the
# "served" times, well under the differences being measured.
WATCH_INTERVAL = 0.005


def _emit(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _create_accounts(store: Store, names: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    targets, labels = {}, {}
    for name in names:
        account = create_account(store, name, [f"ops@{name}"])
        targets[name] = account.dns_label
        labels[name] = dcv_label(account.dcv_secret, name)
    return targets, labels


def _save(store: Store, names: list[str], wake: Callable[[], None]) -> None:
    for name in names:
        set_tracking_domain(store, name, name, POLICY)
        wake()


async def _report_served(cache: CertificateCache) -> None:
    seen: set[str] = set()
    size = 0
    while True:
        if len(cache) != size:
            size = len(cache)
            for name in cache.names():
                if name not in seen:
                    seen.add(name)
                    _emit(event="served", name=name)
        await asyncio.sleep(WATCH_INTERVAL)


async def _commands() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def main() -> None:
    reader = await _commands()
    config = json.loads(await reader.readline())
    logging.basicConfig(
        level=config.get("log_level", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    settings = Settings.model_validate(config["settings"])
    store = Store(settings.effective_database_url)
    await asyncio.to_thread(store.migrate)
    runtime = Runtime(settings, Roles(api=False), store=store)
    await runtime.start()
    loop = asyncio.get_running_loop()

    def wake() -> None:
        loop.call_soon_threadsafe(runtime.wake)

    watcher = asyncio.create_task(_report_served(runtime.cache))
    _emit(event="ready")
    try:
        while line := await reader.readline():
            command = json.loads(line)
            names = [str(name) for name in command.get("names", [])]
            if command["op"] == "accounts":
                targets, labels = await asyncio.to_thread(_create_accounts, store, names)
                _emit(event="accounts", count=len(names), targets=targets, labels=labels)
            elif command["op"] == "save":
                await asyncio.to_thread(_save, store, names, wake)
                _emit(event="saved", count=len(names))
            elif command["op"] == "quit":
                break
    finally:
        watcher.cancel()
        await runtime.aclose()


if __name__ == "__main__":
    asyncio.run(main())
