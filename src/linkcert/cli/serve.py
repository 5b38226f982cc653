"""`linkcert serve` and `linkcert demo`: run the service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from linkcert.cli.app import app, console, fail, settings
from linkcert.config import ConfigError


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


async def _until_signal(main: asyncio.Future[Any]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main


@app.command()
def serve(
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the API, the worker and the edge in one process."""
    from linkcert.service.runtime import Runtime

    current = settings()
    _configure_logging(verbose)
    try:
        runtime = Runtime(current)
    except ConfigError as exc:
        fail(str(exc))

    async def main() -> None:
        task = asyncio.ensure_future(runtime.run_until_stopped())
        try:
            await _until_signal(task)
        finally:
            await runtime.aclose()

    asyncio.run(main())


def _say(message: str) -> None:
    console.print(message, soft_wrap=True, highlight=False, markup=False)


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its state.")] = Path(
        "var/demo"
    ),
    once: Annotated[
        bool, typer.Option("--once", help="Stop once the tracked link answers.")
    ] = False,
) -> None:
    """Run linkcert against a local ACME CA and DNS server, and secure a demo domain."""
    from linkcert.service.demo import run_demo

    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        task = asyncio.ensure_future(run_demo(data_dir, once=once, report=_say))
        await _until_signal(task)

    try:
        asyncio.run(main())
    except FileNotFoundError as exc:
        fail(f"{exc}: run `make demo`, which installs Debian's pebble first")
