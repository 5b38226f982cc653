"""Helpers for end-to-end tests: a loopback platform (DNS + Pebble) and TLS clients."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from linkcert.config import Settings
from linkcert.domains import domain_status, find_account
from linkcert.keys import generate_master_key
from linkcert.store import Store
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.testbed.pebble import PebbleServer
from linkcert.testbed.waiting import NotInTime, free_port, wait_for_async

EDGE_TARGET = "edge.platform.test"
TRACKING_SECRET = "t" * 48


@dataclass
class Platform:
    """The loopback world a test runs linkcert in."""

    dns: LocalDNSServer
    pebble: PebbleServer
    http_port: int
    master_key: str

    def settings(self, db_url: str, data_dir: Path, **overrides: Any) -> Settings:
        ca = {
            "acme_directory_url": self.pebble.directory_url,
            "acme_ca_bundle": Path(self.pebble.ca_bundle_path),
        }
        return loopback_settings(
            self.dns, self.http_port, self.master_key, data_dir, db_url, **{**ca, **overrides}
        )

    def point(
        self, domain: str, store: Store | None = None, account: str | int | None = None
    ) -> None:
        """Create the customer's CNAME: to the account's own target, which names the account
        and leads on to the platform like its wildcard record would; without an account, to
        the platform's shared target, which proves no account."""
        if store is None or account is None:
            self.dns.add(domain, "CNAME", EDGE_TARGET + ".")
            return
        with store.session() as session:
            own = f"{find_account(session, account).dns_label}.{EDGE_TARGET}"
        self.dns.add(own, "CNAME", EDGE_TARGET + ".")
        self.dns.add(domain, "CNAME", own + ".")


def loopback_settings(
    dns: LocalDNSServer,
    http_port: int,
    master_key: str,
    data_dir: Path,
    db_url: str,
    /,
    **overrides: Any,
) -> Settings:
    """Settings for linkcert on loopback: the tests' DNS server, the edge's HTTP port that the
    CA validates against, the shared target; the CA (or CAs) and anything else in `overrides`."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": db_url,
        "nameservers": (dns.nameserver,),
        "cname_targets": (EDGE_TARGET,),
        "allow_test_domains": True,
        "http_listen": f"127.0.0.1:{http_port}",
        "https_listen": "127.0.0.1:0",
        "api_listen": "127.0.0.1:0",
        "master_key": master_key,
        "tracking_key": TRACKING_SECRET,
        "dns_timeout": 1.0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


def start_platform(workdir: Path, **pebble_options: Any) -> Platform:
    dns = LocalDNSServer().start()
    dns.add(EDGE_TARGET, "A", "127.0.0.1")
    http_port = free_port()
    pebble = PebbleServer(
        http_port=http_port, dns_server=dns.nameserver, workdir=workdir, **pebble_options
    ).start()
    return Platform(dns, pebble, http_port, generate_master_key("test"))


async def wait_until_secured(store: Store, domain: str, timeout: float = 60.0) -> None:
    def secured() -> bool:
        status = domain_status(store, domain)
        return status.cert_state == "active"

    try:
        await wait_for_async(secured, f"{domain} secured", timeout=timeout, interval=0.1)
    except NotInTime:
        status = domain_status(store, domain)
        raise AssertionError(f"{domain} not secured in time: {status}") from None


def https_get(
    port: int, server_name: str, path: str, root_pem: str, host: str | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One HTTPS GET trusting only `root_pem`; returns status, headers, peer certificate."""
    context = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        peer = tls.getpeercert()
        request = f"GET {path} HTTP/1.1\r\nHost: {host or server_name}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode("ascii"))
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, peer or {}


def served_serial(port: int, name: str, root: str) -> int:
    """The serial of the certificate the edge presents for `name` (a full handshake)."""
    context = ssl.create_default_context(cadata=root)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number
