"""Origins for the proxy tests: Debian's nginx with a generated configuration, and a small
Python origin that misbehaves on request (slow, reset, endless, echoing what it received).

nginx runs from a temporary directory as the test's own child process (no system service); on
CI a missing nginx is a failure, elsewhere the tests that need it are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from linkcert.testbed.waiting import free_port, stop_process

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def require_nginx() -> None:
    if os.path.exists(NGINX):
        return
    if os.environ.get("CI"):
        pytest.fail("nginx is required on CI: scripts/install-system-packages.sh installs it")
    pytest.skip("nginx is not installed (scripts/install-system-packages.sh installs it)")


# What the origin saw, one line per field: the tests read it back from the response body.
_ECHO = (
    "host=$http_host\\n"
    "forwarded=$http_forwarded\\n"
    "x-forwarded-for=$http_x_forwarded_for\\n"
    "x-forwarded-proto=$http_x_forwarded_proto\\n"
    "x-forwarded-host=$http_x_forwarded_host\\n"
    "x-real-ip=$http_x_real_ip\\n"
    "via=$http_via\\n"
    "connection=$http_connection\\n"
    "keep-alive=$http_keep_alive\\n"
    "te=$http_te\\n"
    "upgrade=$http_upgrade\\n"
    "x-custom=$http_x_custom\\n"
    "x-private=$http_x_private\\n"
    "request=$request\\n"
)


def nginx_config(
    prefix: Path, port: int, *, extra: str = "", tls: tuple[Path, Path] | None = None
) -> str:
    listen = f"listen 127.0.0.1:{port};"
    if tls is not None:
        listen = (
            f"listen 127.0.0.1:{port} ssl; ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};"
        )
    # Run as root (a test machine's CI), the workers would drop to "nobody", who cannot read
    # pytest's private temporary directory.
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 10000;
    keepalive_timeout 75s;
    server {{
        {listen}
        root {prefix}/www;
        location = /echo {{
            default_type text/plain;
            return 200 "{_ECHO}";
        }}
        location = /connection {{
            default_type text/plain;
            add_header X-Connection $connection;
            return 200 "connection=$connection requests=$connection_requests\\n";
        }}
        location = /track {{
            return 302 https://shop.example/landing;
        }}
        location = /error {{
            return 503 "busy\\n";
        }}
        location /files/ {{
            sendfile on;
        }}
        {extra}
    }}
}}
"""


@dataclass
class NginxOrigin:
    port: int
    prefix: Path

    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"


@contextlib.contextmanager
def nginx_origin(
    tmp_path: Path, *, extra: str = "", tls: tuple[Path, Path] | None = None
) -> Iterator[NginxOrigin]:
    """nginx on a free loopback port, serving /echo, /connection, /track, /error and
    /files/ (from `prefix/www/files`); over TLS with `tls` (chain file, key file)."""
    require_nginx()
    prefix = tmp_path / "nginx"
    (prefix / "www" / "files").mkdir(parents=True)
    port = free_port()
    config = prefix / "nginx.conf"
    config.write_text(nginx_config(prefix, port, extra=extra, tls=tls))
    process = subprocess.Popen(
        [NGINX, "-c", str(config), "-p", str(prefix), "-e", str(prefix / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, process)
        yield NginxOrigin(port, prefix, tls is not None)
    finally:
        stop_process(process, timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(500):
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"nginx exited at start: {stderr}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nginx did not listen on {port}")


# --- a Python origin for faults -------------------------------------------------------------


@dataclass
class SeenRequest:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class FaultOrigin:
    """An HTTP/1.1 origin on loopback. By path:

    - `/slow`: never answers; `/reset`: resets the connection without answering;
    - `/endless`: a chunked response that never ends (64 KiB chunks as fast as the edge reads);
    - `/early`: answers 200 at once without reading the body, then closes;
    - `/once...`: answered as the first request of a connection, reset as a later one;
    - anything else: 200 with the body it received.
    """

    port: int = 0
    connections: int = 0
    open_connections: int = 0
    requests: list[SeenRequest] = field(default_factory=list)
    endless_ended: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    answer_status: int = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        answered = 0
        try:
            while True:
                try:
                    raw_head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                try:
                    request = await _read_request(reader, raw_head)
                except (asyncio.IncompleteReadError, ValueError, ConnectionError):
                    return  # the edge gave up on this request midway
                self.requests.append(request)
                if answered and request.target.startswith("/once"):
                    # As an origin that had just closed an idle keep-alive connection: reset.
                    _reset(writer)
                    return
                answered += 1
                if not await self._answer(request, writer):
                    return
        finally:
            self.open_connections -= 1
            writer.close()

    async def _answer(self, request: SeenRequest, writer: asyncio.StreamWriter) -> bool:
        path = request.target
        if path == "/slow":
            await asyncio.sleep(3600)
            return False
        if path == "/reset":
            _reset(writer)
            return False
        if path == "/endless":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
            try:
                for _ in range(100_000):  # 6.5 GB: far more than any test reads
                    writer.write(chunk)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                self.endless_ended.set()
            return False
        body = request.body
        writer.write(
            b"HTTP/1.1 %d OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nX-Origin-Port: %d\r\n\r\n%s"
            % (self.answer_status, len(body), self.port, body)
        )
        await writer.drain()
        return path != "/early"


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    linger_zero = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # close sends RST
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
    writer.transport.abort()


async def _read_request(reader: asyncio.StreamReader, raw_head: bytes) -> SeenRequest:
    lines = raw_head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    names = {name.lower(): value for name, value in headers}
    body = b""
    if names.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif "content-length" in names and target != "/early":
        body = await reader.readexactly(int(names["content-length"]))
    return SeenRequest(method, target, headers, body, raw_head)


@contextlib.asynccontextmanager
async def fault_origin() -> AsyncIterator[FaultOrigin]:
    origin = FaultOrigin()
    server = await asyncio.start_server(origin.handle, "127.0.0.1", 0)
    origin.server = server
    origin.port = server.sockets[0].getsockname()[1]
    try:
        yield origin
    finally:
        server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await server.wait_closed()


def refused_origin() -> str:
    """An origin address where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


# --- a client that reads any framing ----------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def fields(self) -> dict[str, str]:
        """The body of nginx's /echo as a dict."""
        found = {}
        for line in self.body.decode().splitlines():
            name, _, value = line.partition("=")
            found[name] = value
        return found


async def read_reply(reader: asyncio.StreamReader, *, head: bool = False) -> Reply:
    """One response, framed by Content-Length, chunks, or the connection's close."""
    async with asyncio.timeout(30):
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name.strip(), value.strip()))
        names = {name.lower(): value for name, value in headers}
        chunked = names.get("transfer-encoding", "").lower() == "chunked"
        if head or status in (204, 304) or 100 <= status < 200:
            return Reply(status, headers, b"", chunked)
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return Reply(status, headers, b"".join(parts), chunked)
        if "content-length" in names:
            return Reply(
                status, headers, await reader.readexactly(int(names["content-length"])), False
            )
        return Reply(status, headers, await reader.read(), False)
