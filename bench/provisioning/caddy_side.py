"""The peer: Caddy with on-demand TLS, run from the shared Caddyfile, state in a temp dir.

A new name gets its certificate during its first TLS handshake: Caddy asks the `ask` endpoint
(here a tiny HTTP server on loopback that allows every name), orders a certificate from Pebble
and completes the handshake once it has one. So a single HTTPS request both triggers and
observes issuance.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

from bench.provisioning import children
from bench.provisioning.probe import client_context, https_get
from bench.provisioning.world import World

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CADDYFILE = REPO_ROOT / "../shared/bench/caddy-peer.Caddyfile"
START_TIMEOUT = 20.0


class CaddyFailed(RuntimeError):
    """Caddy did not start, or could not get a certificate for a name."""


class _AllowEveryName(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per name on stderr would drown the report


class _AskListener(ThreadingHTTPServer):
    # A wave opens many handshakes at once and Caddy asks for each: the default backlog of 5
    # would refuse some of those connections, failing handshakes for the benchmark's sake.
    request_queue_size = 1024
    daemon_threads = True


class AskServer:
    """Caddy's `ask` endpoint: 200 for every name (the benchmark owns every name it uses)."""

    def __init__(self) -> None:
        self._server = _AskListener(("127.0.0.1", 0), _AllowEveryName)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/ask"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # shutdown() waits for serve_forever, so it would hang on a server never started.
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def caddy_binary() -> str:
    found = shutil.which("caddy")
    if found is None:
        raise CaddyFailed("no caddy binary: install Debian's `caddy` (make bench-provision does)")
    return found


class CaddySide:
    """One Caddy process on the world's two ports."""

    name = "caddy"

    def __init__(self, world: World, workdir: Path, caddyfile: Path = DEFAULT_CADDYFILE) -> None:
        self.world = world
        self.workdir = workdir
        self.caddyfile = caddyfile.resolve()
        self.context: ssl.SSLContext = client_context(world.root_pem)
        self._ask = AskServer()
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "caddy.log"

    async def start(self) -> None:
        if not self.caddyfile.is_file():
            raise CaddyFailed(f"the peer's Caddyfile is missing: {self.caddyfile}")
        storage = self.workdir / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        self._ask.start()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            # Keep Caddy's own config and data directories inside the temp dir too.
            "HOME": str(self.workdir),
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
            "XDG_DATA_HOME": str(self.workdir / "data"),
            "ACME_DIRECTORY": self.world.directory_url,
            "ACME_CA_ROOT": str(self.world.ca_bundle),
            "HTTP_PORT": str(self.world.http_port),
            "HTTPS_PORT": str(self.world.https_port),
            "CADDY_STORAGE": str(storage),
            "ASK_URL": self._ask.url,
        }
        command = [caddy_binary(), "run", "--adapter", "caddyfile", "--config", str(self.caddyfile)]
        self._log = self.log_path.open("ab")
        self._process = await children.spawn(command, env=env, cwd=self.workdir, log=self._log)
        await self._wait_listening()

    async def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.returncode is not None:
                raise CaddyFailed(f"caddy exited at start; see {self.log_path}:\n{self.log_tail()}")
            if await _accepts(self.world.https_port) and await _accepts(self.world.http_port):
                return
            await asyncio.sleep(0.05)
        raise CaddyFailed(f"caddy did not listen within {START_TIMEOUT:g} s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def prepare(self, names: list[str]) -> None:
        """The customers' CNAMEs; Caddy itself needs nothing before the first handshake."""
        self.world.point(names)

    async def obtain(self, name: str, timeout: float) -> float:
        """Seconds from the first handshake for `name` to a verified `ok <name>` answer."""
        started = time.monotonic()
        answer = await https_get(self.world.https_port, name, "/", self.context, timeout)
        elapsed = time.monotonic() - started
        if answer.status != 200 or answer.body.decode(errors="replace") != f"ok {name}":
            raise CaddyFailed(f"caddy answered {answer.status} {answer.body[:80]!r} for {name}")
        return elapsed

    async def stop(self) -> None:
        if self._process is not None:
            await children.stop(self._process)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self._ask.stop()

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
