"""`linkcert serve` and `linkcert demo`: run the service."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from linkcert.cli.app import app, config_file, console, fail, settings
from linkcert.service.roles import Roles

if TYPE_CHECKING:
    import asyncio

    from linkcert.config import Settings


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


async def _until_signal(main: asyncio.Future[Any]) -> None:
    import asyncio
    import contextlib
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main


def _run(roles: Roles, verbose: bool, current: Settings | None = None) -> None:
    import asyncio

    from linkcert.config import ConfigError
    from linkcert.service.runtime import Runtime

    current = current or settings()
    _configure_logging(verbose)
    try:
        runtime = Runtime(current, roles, create_database=roles == Roles())
    except ConfigError as exc:
        fail(str(exc))

    async def main() -> None:
        task = asyncio.ensure_future(runtime.run_until_stopped())
        try:
            await _until_signal(task)
        finally:
            await runtime.aclose()

    try:
        with asyncio.Runner(loop_factory=_loop_factory(roles)) as runner:
            runner.run(main())
    except ConfigError as exc:
        fail(str(exc))


def _loop_factory(roles: Roles) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for a process that is only an edge, as the forked edge processes use.

    Besides its speed, uvloop hands a new connection to the edge within one turn of the loop, so
    a stopping edge drains every connection it accepted (see Edge.aclose); the other roles keep
    asyncio's own loop.
    """
    if roles.edge and not roles.worker and not roles.api:
        import uvloop

        return uvloop.new_event_loop
    return None


@app.command()
def serve(
    workers: Annotated[
        int, typer.Option("--workers", min=0, max=64, help="Worker processes (fleet mode).")
    ] = 0,
    edges: Annotated[
        int, typer.Option("--edges", min=0, max=64, help="Edge processes sharing the ports.")
    ] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the API, the worker and the edge; with --workers/--edges, as supervised processes."""
    if workers == 0 and edges == 0:
        _run(Roles(), verbose)
        return
    import asyncio

    from linkcert.service.fleet import Supervisor

    current = settings()
    _configure_logging(verbose)
    if current.effective_database_url.startswith("sqlite"):
        fail("several processes need PostgreSQL: set LINKCERT_DATABASE_URL (see docs/deploy.md)")
    asyncio.run(Supervisor(workers, edges, api=True, config_file=config_file()).run())


@app.command()
def worker(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run only the lifecycle worker (fleet mode: any number, on any machine)."""
    _run(Roles(worker=True, edge=False, api=False), verbose)


@app.command()
def edge(
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="Edge processes sharing the ports and one copy of the certificates: one per "
            "core (default: the edge_processes setting, 1).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run only the edge; several on one machine share the ports (SO_REUSEPORT)."""
    current = settings(edge_processes=processes)
    if current.edge_processes == 1:
        _run(Roles(worker=False, edge=True, api=False, share_ports=True), verbose, current)
        return
    from linkcert.config import ConfigError
    from linkcert.service.edge_processes import run_edge_processes

    _configure_logging(verbose)
    try:
        code = run_edge_processes(current)
    except ConfigError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def api(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run only the API."""
    _run(Roles(worker=False, edge=False, api=True), verbose)


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
    import asyncio

    from linkcert.service.demo import run_demo
    from linkcert.testbed.pebble import PebbleStartError

    logging.basicConfig(level=logging.WARNING)

    async def main() -> None:
        task = asyncio.ensure_future(run_demo(data_dir.resolve(), once=once, report=_say))
        await _until_signal(task)

    try:
        asyncio.run(main())
    except FileNotFoundError as exc:
        fail(f"{exc}: run `make demo`, which installs Debian's pebble first")
    except PebbleStartError as exc:
        fail(f"the demo's local ACME CA did not start: {exc}")
    if not once:
        _say(f"demo stopped; its state stays in {data_dir.resolve()}")
