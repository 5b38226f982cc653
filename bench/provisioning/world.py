"""The loopback world both contenders run in: one DNS server, one Pebble, two fixed ports.

Pebble's validator connects to a single `httpPort` (HTTP-01) and a single `tlsPort`
(TLS-ALPN-01), so the contenders take turns on the same two ports: whichever runs serves
HTTP on `http_port` and HTTPS on `https_port`. Every name is a CNAME to the platform's target,
which has an A record for 127.0.0.1, so names resolve the same way for both.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from linkcert.testbed.localdns import LocalDNSServer
from linkcert.testbed.pebble import PebbleServer
from linkcert.testbed.waiting import free_port

EDGE_TARGET = "edge.platform.bench.test"


class World:
    """DNS and Pebble (PEBBLE_VA_NOSLEEP=1, Pebble's other defaults); a context manager."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.http_port = free_port()
        self.https_port = free_port()
        self.dns = LocalDNSServer()
        self.pebble = PebbleServer(
            http_port=self.http_port,
            tls_port=self.https_port,
            dns_server=None,  # set in start(), once the DNS server has its port
            workdir=workdir / "pebble",
        )
        self.root_pem = ""

    def start(self) -> Self:
        self.dns.start()
        self.dns.add(EDGE_TARGET, "A", "127.0.0.1")
        self.pebble.dns_server = self.dns.nameserver
        self.pebble.start()
        # Issued certificates chain to this root; the client trusts it and nothing else.
        self.root_pem = self.pebble.root_pem()
        return self

    def stop(self) -> None:
        self.pebble.stop()
        self.dns.stop()

    def point(self, names: list[str]) -> None:
        """Give each name the CNAME a customer would add."""
        for name in names:
            self.dns.add(name, "CNAME", EDGE_TARGET + ".")

    @property
    def ca_bundle(self) -> Path:
        """What to trust for Pebble's own HTTPS (the ACME API)."""
        return Path(self.pebble.ca_bundle_path)

    @property
    def directory_url(self) -> str:
        return self.pebble.directory_url

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()  # whatever did start
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
