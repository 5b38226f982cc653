"""Debian's Knot DNS (`knotd`) as an unprivileged child process, and a resolver in front of it.

`KnotServer` is authoritative for the zones it is given, on a free loopback port, with its own
configuration, run directory and storage in a temporary directory. Every zone accepts RFC 2136
updates signed with the TSIG key `update_key` (and with `admin_key`, which tests use to change
customers' records), so tests change DNS the way a real operator's tooling does.

`ChasingResolver` answers like a recursive resolver for those zones: it asks Knot (never caching)
and, when an answer ends in a CNAME to a name in another zone, asks again for the target and
returns the whole chain. Pebble's `-dnsserver` and linkcert's `nameservers` point at it, so a
customer's `_acme-challenge` CNAME into the platform's delegation zone is followed as on the
Internet. Names outside Knot's zones get an empty answer (NODATA), as a parent without CAA would.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from linkcert.testbed.waiting import free_port, stop_process

DEFAULT_BINARY = "/usr/sbin/knotd"
ALGORITHM = "hmac-sha256"
_MAX_CHASE = 8


class KnotStartError(RuntimeError):
    """knotd did not start; the message carries the end of its log."""


def new_tsig_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class KnotServer:
    """knotd on 127.0.0.1, authoritative for `zones`, updatable with TSIG."""

    def __init__(
        self,
        zones: tuple[str, ...],
        *,
        workdir: Path | None = None,
        binary: str = DEFAULT_BINARY,
        startup_timeout: float = 20.0,
    ) -> None:
        self.zones = tuple(zone.rstrip(".").lower() for zone in zones)
        self.host = "127.0.0.1"
        self.port = 0
        self.update_key_name = "linkcert-dcv"
        self.update_secret = new_tsig_secret()
        self.admin_key_name = "tests-admin"
        self.admin_secret = new_tsig_secret()
        self._binary = shutil.which(binary) or binary
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="linkcert-knot-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "knotd.log"

    def start(self) -> Self:
        for attempt in range(3):
            self.port = free_port(self.host)
            self._write_files()
            self._log = self.log_path.open("ab")
            self._process = subprocess.Popen(
                [self._binary, "-c", str(self.workdir / "knot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
            try:
                self._wait_until_ready()
                return self
            except KnotStartError:
                self.stop()
                if attempt == 2:
                    raise
        return self  # unreachable

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # --- records, changed the way an operator's tooling changes them ---------------------------

    def zone_of(self, name: str) -> str:
        name = name.rstrip(".").lower()
        best = max(
            (z for z in self.zones if name == z or name.endswith("." + z)), key=len, default=None
        )
        if best is None:
            raise ValueError(f"{name} is in none of the zones {', '.join(self.zones)}")
        return best

    def replace(self, name: str, rtype: str, *values: str, ttl: int = 1) -> None:
        """Make `values` the records of `name` and type (none: remove them)."""
        zone = self.zone_of(name)
        update = self._admin_update(zone)
        relative = dns.name.from_text(name).relativize(dns.name.from_text(zone))
        if values:
            update.replace(relative, ttl, rtype, *values)
        else:
            update.delete(relative, rtype)
        self._send(update)

    def remove_name(self, name: str) -> None:
        zone = self.zone_of(name)
        update = self._admin_update(zone)
        update.delete(dns.name.from_text(name).relativize(dns.name.from_text(zone)))
        self._send(update)

    def records(self, name: str, rtype: str) -> list[str]:
        """What Knot answers for `name` and type, asked directly (texts of the records)."""
        response = dns.query.tcp(
            dns.message.make_query(name, rtype), self.host, port=self.port, timeout=5
        )
        wanted = dns.rdatatype.from_text(rtype)
        return [
            record.to_text()
            for rrset in response.answer
            if rrset.rdtype == wanted and rrset.name == dns.name.from_text(name)
            for record in rrset
        ]

    def zone_records(self, zone: str, rtype: str) -> list[str]:
        """Every record of type `rtype` in the zone, by a zone transfer (AXFR)."""
        wanted = dns.rdatatype.from_text(rtype)
        found: list[str] = []
        for message in dns.query.xfr(self.host, zone, port=self.port, lifetime=5):
            for rrset in message.answer:
                if rrset.rdtype == wanted:
                    found.extend(f"{rrset.name} {record.to_text()}" for record in rrset)
        return found

    def _admin_update(self, zone: str) -> dns.update.UpdateMessage:
        key = dns.tsig.Key(self.admin_key_name, self.admin_secret, ALGORITHM)
        return dns.update.UpdateMessage(zone, keyring=key)

    def _send(self, update: dns.update.UpdateMessage) -> None:
        response = dns.query.tcp(update, self.host, port=self.port, timeout=5)
        if response.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"knotd refused the update: {dns.rcode.to_text(response.rcode())}")

    # --- start-up --------------------------------------------------------------------------------

    def _write_files(self) -> None:
        zones_dir = self.workdir / "zones"
        for sub in ("run", "storage", zones_dir.name):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        for zone in self.zones:
            path = zones_dir / f"{zone}.zone"
            if not path.exists():
                path.write_text(
                    f"$ORIGIN {zone}.\n$TTL 1\n"
                    f"@ SOA ns1.{zone}. hostmaster.{zone}. 1 60 60 3600 1\n"
                    f"@ NS ns1.{zone}.\n"
                    f"ns1 A {self.host}\n",
                    encoding="ascii",
                )
        zone_entries = "".join(f"  - domain: {zone}\n" for zone in self.zones)
        config = f"""server:
    rundir: "{self.workdir}/run"
    listen: {self.host}@{self.port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1

database:
    storage: "{self.workdir}/storage"

log:
  - target: stderr
    any: info

key:
  - id: {self.update_key_name}
    algorithm: {ALGORITHM}
    secret: {self.update_secret}
  - id: {self.admin_key_name}
    algorithm: {ALGORITHM}
    secret: {self.admin_secret}

acl:
  - id: updates
    key: [{self.update_key_name}, {self.admin_key_name}]
    action: update
  - id: transfers
    address: {self.host}
    action: transfer

template:
  - id: default
    storage: "{zones_dir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
    semantic-checks: off
    acl: [updates, transfers]

zone:
{zone_entries}"""
        (self.workdir / "knot.conf").write_text(config, encoding="ascii")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        probe = dns.message.make_query(self.zones[0], "SOA")
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise KnotStartError(f"knotd exited: {self._log_tail()}")
            try:
                response = dns.query.udp(probe, self.host, port=self.port, timeout=0.5)
                if response.rcode() == dns.rcode.NOERROR and response.answer:
                    return
            except (dns.exception.DNSException, OSError):
                pass
            if time.monotonic() > deadline:
                raise KnotStartError(f"knotd did not answer in time: {self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-20:])


class ChasingResolver:
    """A loopback resolver in front of authoritative servers, following CNAMEs across their
    zones; UDP and TCP, no cache.

    Each question goes to the first upstream that does not refuse it (Knot refuses names
    outside its zones), so Knot can be put in front of another server, such as the project's
    `LocalDNSServer`, which answers for everything else."""

    def __init__(self, *upstreams: tuple[str, int], host: str = "127.0.0.1") -> None:
        if not upstreams:
            raise ValueError("give at least one upstream server")
        self.upstreams = upstreams
        self.host = host
        self.port = 0
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        resolver = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                answer = resolver.respond(data, max_size=1232)
                if answer is not None:
                    sock.sendto(answer, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                connection = self.request
                connection.settimeout(5)
                try:
                    head = connection.recv(2)
                    if len(head) < 2:
                        return
                    (size,) = struct.unpack("!H", head)
                    data = b""
                    while len(data) < size:
                        chunk = connection.recv(size - len(data))
                        if not chunk:
                            return
                        data += chunk
                except OSError:
                    return
                answer = resolver.respond(data, max_size=65535)
                if answer is not None:
                    connection.sendall(struct.pack("!H", len(answer)) + answer)

        for _ in range(3):
            port = free_port(self.host)
            try:
                udp = socketserver.ThreadingUDPServer((self.host, port), Udp)
                tcp = socketserver.ThreadingTCPServer(
                    (self.host, port), Tcp, bind_and_activate=False
                )
                tcp.allow_reuse_address = True
                tcp.daemon_threads = True
                udp.daemon_threads = True
                tcp.server_bind()
                tcp.server_activate()
            except OSError:
                continue
            self.port = port
            self._servers = [udp, tcp]
            break
        else:
            raise RuntimeError("no free port for the resolver")
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def respond(self, data: bytes, max_size: int) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        response.flags &= ~dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        try:
            rcode, answer = self._chase(question.name, question.rdtype)
        except (dns.exception.DNSException, OSError):
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        response.set_rcode(rcode)
        response.answer = answer
        wire = response.to_wire()
        if len(wire) > max_size:
            response.answer = []
            response.flags |= dns.flags.TC
            wire = response.to_wire()
        return wire

    def _ask(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> dns.message.Message | None:
        """The first upstream's answer that is not a refusal; None when all refuse."""
        for host, port in self.upstreams:
            reply, _ = dns.query.udp_with_fallback(
                dns.message.make_query(name, rdtype), host, port=port, timeout=3
            )
            if reply.rcode() != dns.rcode.REFUSED:
                return reply
        return None

    def _chase(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> tuple[dns.rcode.Rcode, list[dns.rrset.RRset]]:
        """Ask, then ask again for the target of a CNAME the answer ends with (an upstream
        answers NXDOMAIN for a target outside its data: the chase goes on elsewhere)."""
        answer: list[dns.rrset.RRset] = []
        rcode = dns.rcode.NOERROR
        for _ in range(_MAX_CHASE):
            reply = self._ask(name, rdtype)
            if reply is None:  # in nobody's zones: an empty answer
                return rcode, answer
            rcode = reply.rcode()
            answer.extend(reply.answer)
            if rdtype == dns.rdatatype.CNAME:
                break
            if any(rrset.rdtype == rdtype for rrset in reply.answer):
                break
            aliases = [r for r in reply.answer if r.rdtype == dns.rdatatype.CNAME]
            if not aliases:
                break
            target = aliases[-1][0].target
            if target == name or any(r.name == target for r in answer):
                break
            name = target
        return rcode, answer
