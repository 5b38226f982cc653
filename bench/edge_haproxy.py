"""HAProxy as the edge benchmark's optional third side: TLS terminated, every request answered
by HAProxy itself with a 302.

That is the cheapest thing HAProxy could do per request, so it bounds from above what "HAProxy
terminating TLS in front of linkcert" could reach: in reality it would also forward each request
to linkcert (or verify the token in Lua). Debian 12's HAProxy 2.6 is linked against the system
OpenSSL 3.0, the same library Python's ssl module uses for linkcert's edge.

The certificates are the benchmark's own files, named in a crt-list, one line per name with the
name as its SNI filter: `<name>.crt` is the chain (leaf first) and `ssl-load-extra-del-ext` with
`ssl-load-extra-files key` makes HAProxy take the key from `<name>.key` beside it, and look for
no other extra files (OCSP, issuer, SCTL). HAProxy builds one SSL_CTX per certificate while it
parses its configuration, before it binds its port: every certificate is loaded at start-up.

Made to measure the same thing as on the other two sides:
- `strict-sni`: a name without a certificate gets no handshake (no default certificate served);
- TLS 1.2 and 1.3, ALPN http/1.1;
- no resumption, and no ticket sent: `no-tls-tickets` turns off stateless tickets, and
  `tune.ssl.cachesize 0` the session cache, without which OpenSSL would resume TLS 1.3 sessions
  statefully. OpenSSL still sends two (stateful, now useless) TLS 1.3 tickets after each full
  handshake, and HAProxy 2.6 has no setting for that number, so HAProxy runs with an OpenSSL
  configuration of its own (`OPENSSL_CONF`) whose only content is `NumTickets = 0` in the
  `system_default` section, which OpenSSL applies to every SSL_CTX: like linkcert and Caddy, it
  then sends no ticket at all (the benchmark's resumption check says so). This machine's
  /etc/ssl/openssl.cnf sets nothing that this replaces (its `openssl_init` section is empty);
- `nbthread` = the number of linkcert's edge processes (one process, that many threads).
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench.edge_pki import NAME_SUFFIX, BenchPki
from bench.edge_proc import LOOPBACK, cpu_seconds_of_tree, stop, wait_for_port
from linkcert.testbed.waiting import free_port

REDIRECT_TO = "https://example.org/"


def crt_list(pki: BenchPki, names: Sequence[str]) -> str:
    """One line per name: its chain file, then the name as the line's only SNI filter."""
    return "".join(f"{pki.chain_path(name)} {name}\n" for name in names)


def haproxy_config(*, port: int, crt_list_path: Path, threads: int) -> str:
    return f"""\
global
    nbthread {threads}
    maxconn 4096
    # <name>.crt's key is <name>.key; no OCSP, issuer or SCTL files to look for.
    ssl-load-extra-del-ext
    ssl-load-extra-files key
    # No session cache: with it, TLS 1.3 sessions would resume statefully despite no-tls-tickets.
    tune.ssl.cachesize 0

defaults
    mode http
    timeout client 30s
    timeout connect 5s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 30s

frontend edge
    bind {LOOPBACK}:{port} ssl crt-list {crt_list_path} strict-sni alpn http/1.1 \
ssl-min-ver TLSv1.2 no-tls-tickets
    http-request redirect location {REDIRECT_TO} code 302
"""


# Read by OpenSSL when HAProxy starts (OPENSSL_CONF), applied to each SSL_CTX it creates.
OPENSSL_CONF = """\
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
NumTickets = 0
"""


def haproxy_version() -> str:
    """`HAProxy version 2.6.12-1+deb12u4 ...; running on OpenSSL 3.0.19 ...`, from `haproxy -vv`."""
    output = subprocess.run(
        ["haproxy", "-vv"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    lines = output.splitlines()
    version = lines[0].split(" - ")[0] if lines else "HAProxy (version unknown)"
    running = next((line for line in lines if line.startswith("Running on OpenSSL")), "")
    return f"{version}; {running.split(':', 1)[-1].strip()}" if running else version


def refuses_unknown_name(port: int) -> bool:
    """Whether a handshake for a name that has no certificate fails (no default certificate)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((LOOPBACK, port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=f"unknown.{NAME_SUFFIX}"),
        ):
            return False
    except (ssl.SSLError, ConnectionError):
        return True


class HaproxyPeer:
    """One HAProxy process (`nbthread` = `threads`) serving `names` on a loopback HTTPS port."""

    def __init__(self, run_dir: Path, pki: BenchPki, names: Sequence[str], *, threads: int) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.https_port = free_port()
        crt_list_path = run_dir / "certificates.crtlist"
        crt_list_path.write_text(crt_list(pki, names))
        self.config_path = run_dir / "haproxy.cfg"
        self.config_path.write_text(
            haproxy_config(port=self.https_port, crt_list_path=crt_list_path, threads=threads)
        )
        openssl_conf = run_dir / "openssl.cnf"
        openssl_conf.write_text(OPENSSL_CONF)
        self.log_path = run_dir / "haproxy.log"
        self._log = self.log_path.open("wb")
        started = time.monotonic()
        # -db: stay in the foreground, one process (no master-worker), so it is the one to stop.
        self.process = subprocess.Popen(
            ["haproxy", "-db", "-f", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OPENSSL_CONF": str(openssl_conf)},
        )
        try:
            # HAProxy loads every certificate before it binds the port.
            wait_for_port(self.https_port, self.process, timeout=600)
        except BaseException:
            self.close()
            raise
        self.start_seconds = time.monotonic() - started
        self.start_cpu_seconds = cpu_seconds_of_tree(self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def warnings(self) -> int:
        """Lines HAProxy wrote at start-up and since (it logs nothing else: no `log` line)."""
        return len(self.log_path.read_text(errors="replace").splitlines())

    def close(self) -> None:
        stop(self.process)
        self._log.close()
