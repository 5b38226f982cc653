"""Quick loopback figures for the edge, for guidance while developing it.

    python -m bench.edge_micro                      # keep-alive requests/s, then TLS handshakes/s
    python -m bench.edge_micro --only requests --seconds 10 --server-loop uvloop
    python -m bench.edge_micro --only requests --token-version 1 --distinct 20000

The edge runs in a child process (one core), the client in this one (the other core), both on
127.0.0.1. Requests are tracked-link clicks (`GET /c/<token>`, verified and recorded); the
handshakes are full TLS handshakes (no resumption) with SNI. `--token-version` picks version 1
tokens or version 2 (with 40 bytes of data); `--distinct N` spreads the clicks over N tokens, so
that with N above the edge's verified-token cache (4,096) every click is verified afresh. Each
run stops by itself after `--seconds`. The numbers drift on a shared machine; bench/edge.py
runs the side by side with Caddy.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

T = TypeVar("T")

DOMAIN = "bench.example.test"
SECRET = "bench-secret-" + "x" * 40


def _self_signed(name: str) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from linkcert.testbed.pki import private_key_pem, self_signed_leaf

    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed_leaf(key, (name,), lifetime=datetime.timedelta(days=8))
    return cert.public_bytes(serialization.Encoding.PEM), private_key_pem(key)


# The server side -------------------------------------------------------------------------


async def _serve(recording: str) -> None:
    import tempfile

    from linkcert.edge import CertificateCache, Edge, EdgeSettings
    from linkcert.events.store import save_events
    from linkcert.store import Store
    from linkcert.tracking import Click, tracking_key_from_secret

    certificates = CertificateCache()
    chain, key = _self_signed(DOMAIN)
    certificates.put(DOMAIN, chain, key, 1)
    clicks = 0

    def count(batch: Sequence[Click]) -> None:
        nonlocal clicks
        clicks += len(batch)

    async def no_challenge(token: str) -> str | None:
        return None

    directory = tempfile.TemporaryDirectory()
    database = os.environ.get("LINKCERT_BENCH_EVENTS_DB") or (
        f"sqlite:///{directory.name}/events.sqlite3"
    )
    store = Store(database)
    if recording == "store":
        store.migrate()
    elif recording == "spool":
        store.close()

    async def write(batch: Sequence[Click]) -> None:
        # As `linkcert edge` does: a thread writes each batch as events.
        count(batch)
        await asyncio.to_thread(save_events, store, list(batch), "truncated")

    spool = None
    if recording == "spool":
        # As `linkcert edge` does: events appended to the spool, the writer (another process,
        # started by the parent) inserts them.
        from linkcert.tracking.spool import EventSpool

        spool = EventSpool(Path(os.environ["LINKCERT_BENCH_SPOOL_DIR"]))
        spool.open()
    edge = Edge(
        tracking_key=tracking_key_from_secret(SECRET),
        certificates=certificates,
        challenge_lookup=no_challenge,
        click_sink=write if recording == "store" else count,
        settings=EdgeSettings(
            http="127.0.0.1:0", https="127.0.0.1:0", record_events=recording != "off"
        ),
        spool=spool,
    )
    await edge.start()
    print(edge.http_port, edge.https_port, flush=True)
    # Serve until the parent closes our stdin.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await edge.aclose()
    store.close()
    directory.cleanup()
    print(f"clicks delivered to the sink: {clicks}", file=sys.stderr)


class _Server:
    def __init__(self, loop_name: str, recording: str = "count") -> None:
        import tempfile

        environment = dict(os.environ)
        self.writer: subprocess.Popen[bytes] | None = None
        self.writer_cpu_final = 0.0
        self.database: str | None = None
        self._spool_dir: tempfile.TemporaryDirectory[str] | None = None
        if recording == "spool":
            from linkcert.events.writer import DATABASE_ENV
            from linkcert.store import Store

            self._spool_dir = tempfile.TemporaryDirectory()
            spool = Path(self._spool_dir.name) / "spool"
            self.database = database = os.environ.get("LINKCERT_BENCH_EVENTS_DB") or (
                f"sqlite:///{self._spool_dir.name}/events.sqlite3"
            )
            store = Store(database)
            store.migrate()
            store.close()
            environment["LINKCERT_BENCH_SPOOL_DIR"] = str(spool)
            spool.mkdir()
            self.writer = subprocess.Popen(
                [sys.executable, "-m", "linkcert.events.writer", "--spool", str(spool)],
                env={**os.environ, DATABASE_ENV: database},
            )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.edge_micro",
                "--serve",
                "--server-loop",
                loop_name,
                "--recording",
                recording,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        assert self.process.stdout is not None
        http_port, https_port = self.process.stdout.readline().split()
        self.http_port, self.https_port = int(http_port), int(https_port)

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def writer_cpu_seconds(self) -> float:
        return 0.0 if self.writer is None else _cpu_seconds(self.writer.pid)

    def events_stored(self) -> int:
        """After stop(): how many events the writer inserted."""
        from sqlalchemy import func, select

        from linkcert.store import LinkEvent, Store

        assert self.database is not None
        store = Store(self.database)
        with store.session() as session:
            count = int(session.scalar(select(func.count()).select_from(LinkEvent)) or 0)
        store.close()
        return count

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
        if self.writer is not None:
            # Let it insert what is spooled, so that its CPU time counts every event.
            assert self._spool_dir is not None
            spool = Path(self._spool_dir.name) / "spool"
            for _ in range(1200):
                if not list(spool.glob("*.spool")):
                    break
                time.sleep(0.05)
            self.writer_cpu_final = self.writer_cpu_seconds()
            self.writer.terminate()
            self.writer.wait(timeout=60)

    def cleanup(self) -> None:
        if self._spool_dir is not None:
            self._spool_dir.cleanup()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The client side -------------------------------------------------------------------------


class _KeepAliveClient(asyncio.Protocol):
    """Sends one request, waits for its response, sends the next; counts responses."""

    def __init__(
        self, requests: Sequence[bytes], depth: int, stop_at: float, done: asyncio.Future[int]
    ) -> None:
        self.requests = requests
        self.next = 0
        self.depth = depth
        self.stop_at = stop_at
        self.done = done
        self.buffer = b""
        self.answered = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._take(self.depth))

    def _take(self, count: int) -> bytes:
        requests = self.requests
        if len(requests) == 1:
            return requests[0] * count
        start = self.next
        self.next = (start + count) % len(requests)
        chunk = requests[start : start + count]
        if len(chunk) < count:
            chunk = [*chunk, *requests[: count - len(chunk)]]
        return b"".join(chunk)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # Each response here is a bodiless 302, so a blank line ends one.
        finished = self.buffer.count(b"\r\n\r\n")
        if not finished:
            return
        self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
        self.answered += finished
        assert self.transport is not None
        if time.monotonic() < self.stop_at:
            self.transport.write(self._take(finished))
        elif not self.done.done() and self.answered % self.depth == 0:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.answered)


def click_requests(version: int, distinct: int, offset: int = 0) -> list[bytes]:
    """`distinct` click requests, each with its own token of `version` (1 or 2)."""
    from linkcert.tracking import make_token, tracking_key_from_secret

    key = tracking_key_from_secret(SECRET)
    if version == 2:
        from linkcert.tracking import Minter

        minter = Minter(key, DOMAIN)
    requests = []
    for number in range(offset, offset + distinct):
        destination = f"https://shop.example/spring-sale?c={number}"
        if version == 1:
            token = make_token(key, DOMAIN, 123456 + number, destination)
        else:
            data = f"msg={number:012d};rcpt={number:010d};camp=1".encode()
            token = minter.token(destination, data)
        requests.append(
            f"GET /c/{token} HTTP/1.1\r\nHost: {DOMAIN}\r\nUser-Agent: Mozilla/5.0 (bench)\r\n"
            "Accept: */*\r\n\r\n".encode()
        )
    return requests


async def _requests_per_second(
    port: int, connections: int, depth: int, seconds: float, version: int, distinct: int
) -> tuple[int, float]:
    per_connection = max(1, distinct // connections)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    stop_at = started + seconds
    futures = []
    for number in range(connections):
        done: asyncio.Future[int] = loop.create_future()
        futures.append(done)
        requests = click_requests(version, per_connection, number * per_connection)
        await loop.create_connection(
            functools.partial(_KeepAliveClient, requests, depth, stop_at, done), "127.0.0.1", port
        )
    counts = await asyncio.wait_for(asyncio.gather(*futures), seconds + 30)
    return sum(counts), time.monotonic() - started


async def _handshakes_per_second(port: int, concurrency: int, seconds: float) -> tuple[int, float]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # measure the server's work, not certificate checks
    context.set_alpn_protocols(["http/1.1"])
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    stop_at = started + seconds
    completed = 0

    async def worker() -> None:
        nonlocal completed
        while time.monotonic() < stop_at:
            # A fresh connection with no session to resume: a full handshake each time.
            transport, _ = await loop.create_connection(
                asyncio.Protocol, "127.0.0.1", port, ssl=context, server_hostname=DOMAIN
            )
            completed += 1
            transport.abort()

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), seconds + 30)
    return completed, time.monotonic() - started


async def _route_cost(
    version: int, distinct: int, repeat_limit: int, record: bool = True, spool: bool = False
) -> None:
    """The edge's own work for one verified click, in this process: parsing the target,
    verifying the token (or finding it verified), and recording the click. Best of 15 runs of
    20,000 clicks, so other load on the machine matters less than in the loopback runs. With
    `repeat_limit`, each click comes from an address of its own, so every one is counted in the
    repeat limiter's table (its costliest case) and recorded."""
    from linkcert.edge.certs import CertificateCache
    from linkcert.edge.counters import EdgeCounters
    from linkcert.edge.routes import Router
    from linkcert.tracking import ClickRecorder, tracking_key_from_secret
    from linkcert.tracking.repeats import RepeatLimiter

    targets = [request.split(b" ", 2)[1] for request in click_requests(version, max(distinct, 1))]
    recorder = ClickRecorder(lambda batch: None, max_batch=1000, max_pending=10_000_000)

    async def no_challenge(token: str) -> str | None:
        return None

    # Links are answered only on names the edge serves: the name's epoch comes from the
    # certificate cache, as in the product.
    cache = CertificateCache()
    cache.put(DOMAIN, *_self_signed(DOMAIN), 1)
    import tempfile

    from linkcert.tracking.spool import EventSpool

    spool_dir = tempfile.TemporaryDirectory()
    event_spool = EventSpool(Path(spool_dir.name)) if spool else None
    if event_spool is not None:
        event_spool.open()
    router = Router(
        tracking_key=tracking_key_from_secret(SECRET),
        recorder=recorder,
        challenge_lookup=no_challenge,
        challenge_timeout=1.0,
        counters=EdgeCounters(),
        link_epoch=cache.link_epoch,
        repeats=RepeatLimiter(repeat_limit, 600.0) if repeat_limit else None,
        record=record,
        spool=event_spool,
    )
    clicks = 20_000
    agent = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0"
    clients = [f"198.51.{number // 256 % 256}.{number % 256}" for number in range(clicks)]
    best = float("inf")
    for _ in range(15):
        started = time.perf_counter()
        for number in range(clicks):
            client = clients[number]
            router.route(
                b"GET", targets[number % len(targets)], DOMAIN, DOMAIN, client, agent, client
            )
        best = min(best, time.perf_counter() - started)
        await asyncio.sleep(0)  # let the recorder hand its batches to the sink
    print(
        f"route cost per verified click (v{version} tokens, {distinct} distinct, repeat limit "
        f"{repeat_limit or 'off'}, recording {'spooled' if spool else 'on' if record else 'off'}):"
        f" {best / clicks * 1e6:.2f} us"
    )
    await recorder.aclose()
    if event_spool is not None:
        event_spool.close()
    spool_dir.cleanup()


async def _route_ab(version: int, distinct: int, rounds: int = 25, clicks: int = 20_000) -> None:
    """The router's CPU per click with recording off, with the in-memory recorder (its sink
    doing nothing) and with the spool, measured in turn in one process (`time.process_time`,
    best of `rounds`), so that the load of a shared machine falls on all three alike."""
    import tempfile

    from linkcert.edge.certs import CertificateCache
    from linkcert.edge.counters import EdgeCounters
    from linkcert.edge.routes import Router
    from linkcert.tracking import ClickRecorder, tracking_key_from_secret
    from linkcert.tracking.spool import EventSpool

    targets = [request.split(b" ", 2)[1] for request in click_requests(version, max(distinct, 1))]
    cache = CertificateCache()
    cache.put(DOMAIN, *_self_signed(DOMAIN), 1)

    async def no_challenge(token: str) -> str | None:
        return None

    directory = tempfile.TemporaryDirectory()
    spool = EventSpool(Path(directory.name))
    spool.open()
    recorder = ClickRecorder(lambda batch: None, max_batch=1000, max_pending=10_000_000)

    def router(**options: Any) -> Router:
        return Router(
            tracking_key=tracking_key_from_secret(SECRET),
            recorder=recorder,
            challenge_lookup=no_challenge,
            challenge_timeout=1.0,
            counters=EdgeCounters(),
            link_epoch=cache.link_epoch,
            **options,
        )

    routers = {
        "off": router(record=False),
        "in-memory recorder": router(),
        "spool": router(spool=spool),
    }
    agent = b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0"
    best = dict.fromkeys(routers, float("inf"))
    for _ in range(rounds):
        for name, each in routers.items():
            route = each.route
            started = time.process_time()
            for number in range(clicks):
                route(
                    b"GET",
                    targets[number % len(targets)],
                    DOMAIN,
                    DOMAIN,
                    "127.0.0.1",
                    agent,
                    "127.0.0.1",
                )
            best[name] = min(best[name], (time.process_time() - started) / clicks)
            await asyncio.sleep(0)  # let the recorder empty its queue
    print(
        f"router CPU per verified click (v{version} tokens, {distinct} distinct, best of "
        f"{rounds} x {clicks:,}): "
        + ", ".join(f"{name} {seconds * 1e6:.2f} us" for name, seconds in best.items())
    )
    await recorder.aclose()
    spool.close()
    directory.cleanup()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--depth", type=int, default=1, help="requests in flight per connection")
    parser.add_argument("--handshake-concurrency", type=int, default=16)
    parser.add_argument("--only", choices=["requests", "handshakes", "route", "route-ab"])
    parser.add_argument("--token-version", type=int, choices=[1, 2], default=2)
    parser.add_argument("--distinct", type=int, default=1, help="distinct tokens clicked")
    parser.add_argument("--server-loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument(
        "--repeat-limit", type=int, default=0, help="route only: click_repeat_limit (0: off)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--recording",
        choices=["off", "count", "store", "spool"],
        default="count",
        help="clicks not recorded; recorded in memory and counted (the default); recorded and "
        "written as events from a thread of the edge process, as earlier versions did (store); "
        "spooled, as `linkcert edge` does, and inserted by the event writer in a process of its "
        "own (spool, its CPU reported apart), into SQLite or the database named by "
        "LINKCERT_BENCH_EVENTS_DB",
    )
    args = parser.parse_args(argv)

    if args.serve:
        _run_loop(args.server_loop, lambda: _serve(args.recording))
        return
    if args.only == "route-ab":
        _run_loop("asyncio", lambda: _route_ab(args.token_version, args.distinct))
        return
    if args.only == "route":
        _run_loop(
            "asyncio",
            lambda: _route_cost(
                args.token_version,
                args.distinct,
                args.repeat_limit,
                args.recording != "off",
                args.recording == "spool",
            ),
        )
        return

    server = _Server(args.server_loop, args.recording)
    requests_counted = 0
    writer_before = 0.0
    try:
        if args.only in (None, "requests"):
            cpu_before = server.cpu_seconds()
            writer_before = server.writer_cpu_seconds()
            count, elapsed = _run_loop(
                "uvloop",
                lambda: _requests_per_second(
                    server.http_port,
                    args.connections,
                    args.depth,
                    args.seconds,
                    args.token_version,
                    args.distinct,
                ),
            )
            cpu = server.cpu_seconds() - cpu_before
            print(
                f"keep-alive requests ({args.server_loop} server, {args.connections} connections,"
                f" depth {args.depth}, v{args.token_version} tokens, {args.distinct} distinct):"
                f" {count / elapsed:,.0f}/s; server used {cpu:.1f} CPU-s,"
                f" {count / max(cpu, 1e-9):,.0f} requests per server CPU-second"
            )
            requests_counted = count
        if args.only in (None, "handshakes"):
            cpu_before = server.cpu_seconds()
            count, elapsed = _run_loop(
                "uvloop",
                lambda: _handshakes_per_second(
                    server.https_port, args.handshake_concurrency, args.seconds
                ),
            )
            cpu = server.cpu_seconds() - cpu_before
            print(
                f"full TLS handshakes ({args.server_loop} server, ECDSA P-256,"
                f" {args.handshake_concurrency} at once): {count / elapsed:,.0f}/s;"
                f" server used {cpu:.1f} CPU-s,"
                f" {count / max(cpu, 1e-9):,.0f} handshakes per server CPU-second"
            )
    finally:
        server.stop()
    if server.writer is not None:
        writer_cpu = server.writer_cpu_final - writer_before
        stored = server.events_stored()
        print(
            f"event writer: {writer_cpu:.2f} CPU-s during the run,"
            f" {requests_counted / max(writer_cpu, 1e-9):,.0f} events per writer CPU-second;"
            f" {stored:,} events in the store for {requests_counted:,} answers counted"
        )
    server.cleanup()


def _run_loop(loop_name: str, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import uvloop

    factory = uvloop.new_event_loop if loop_name == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())


if __name__ == "__main__":
    main()
