"""The loopback world both contenders run in: one DNS server, one Pebble, two fixed ports.

Pebble's validator connects to a single `httpPort` (HTTP-01) and a single `tlsPort`
(TLS-ALPN-01), so the contenders take turns on the same two ports: whichever runs serves
HTTP on `http_port` and HTTPS on `https_port`. Every name is a CNAME to the platform's target,
which has an A record for 127.0.0.1, so names resolve the same way for both.

With `dns01`, Knot is authoritative for the platform's delegation zone (`DCV_ZONE`, updated by
linkcert with TSIG) and a resolver in front of Knot and the DNS server follows the customers'
`_acme-challenge` CNAMEs into it: Pebble (every side alike) and linkcert ask that resolver.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from linkcert.testbed.knot import ChasingResolver, KnotServer
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.testbed.pebble import PebbleServer
from linkcert.testbed.waiting import free_port

# The platform's names are in a registrable domain of their own: linkcert refuses customers'
# names in the platform's (`bench.test` holds the customers' names).
EDGE_TARGET = "edge.platform-bench.test"
DCV_ZONE = "dcv.platform-bench.test"
ELSEWHERE = "old-tracker.elsewhere-bench.test"  # where a name secured in advance still points


class World:
    """DNS and Pebble (PEBBLE_VA_NOSLEEP=1, Pebble's other defaults); a context manager."""

    def __init__(self, workdir: Path, *, dns01: bool = False) -> None:
        self.workdir = workdir
        self.knot = KnotServer((DCV_ZONE,), workdir=workdir / "knot") if dns01 else None
        self.resolver: ChasingResolver | None = None
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
        self.dns.add(ELSEWHERE, "A", "192.0.2.80")
        self.pebble.dns_server = self.dns.nameserver
        if self.knot is not None:
            self.knot.start()
            self.resolver = ChasingResolver(
                (self.knot.host, self.knot.port), self.dns.address
            ).start()
            self.pebble.dns_server = self.resolver.nameserver
        self.pebble.start()
        # Issued certificates chain to this root; the client trusts it and nothing else.
        self.root_pem = self.pebble.root_pem()
        return self

    def stop(self) -> None:
        self.pebble.stop()
        if self.resolver is not None:
            self.resolver.stop()
        if self.knot is not None:
            self.knot.stop()
        self.dns.stop()

    @property
    def nameserver(self) -> str:
        """What linkcert asks: the resolver in front of Knot when there is one."""
        return self.resolver.nameserver if self.resolver is not None else self.dns.nameserver

    def delegate(self, labels: dict[str, str]) -> None:
        """Give each name the records of a customer secured before the switch: the traffic
        CNAME still elsewhere, `_acme-challenge` delegated to the account's label."""
        for name, label in labels.items():
            self.dns.add(name, "CNAME", ELSEWHERE + ".")
            self.dns.add(f"_acme-challenge.{name}", "CNAME", f"{label}.{DCV_ZONE}.")

    def point(self, names: list[str], targets: dict[str, str] | None = None) -> None:
        """Give each name the CNAME a customer would add: to the account's own target
        (`targets`: the account's DNS label by name), which names the account and leads on to
        the platform as the operator's wildcard record would; else to the shared target."""
        for name in names:
            label = (targets or {}).get(name)
            if label is None:
                self.dns.add(name, "CNAME", EDGE_TARGET + ".")
                continue
            own = f"{label}.{EDGE_TARGET}"
            self.dns.add(own, "CNAME", EDGE_TARGET + ".")
            self.dns.add(name, "CNAME", own + ".")

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
