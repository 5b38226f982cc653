"""The world of the delegated DNS-01 tests: Knot authoritative for the customers' zones, the
platform's zone and its delegation zone, a CNAME-following resolver in front of it, and Pebble
validating through that resolver.

Knot is Debian's `knot`; on CI a missing one is a failure, elsewhere a skip.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from linkcert.config import Settings
from linkcert.keys import generate_master_key
from linkcert.testbed.knot import DEFAULT_BINARY, ChasingResolver, KnotServer
from linkcert.testbed.pebble import PebbleServer
from linkcert.testbed.waiting import free_port
from tests.e2e_support import TRACKING_SECRET

CUSTOMER_ZONE = "customer.test"
PLATFORM_ZONE = "platform.test"
DCV_ZONE = "dcv.platform.test"
EDGE_TARGET = "edge.platform.test"
ELSEWHERE = "old-tracker.customer.test"  # where traffic goes before the switch


def require_knot() -> None:
    if shutil.which(DEFAULT_BINARY):
        return
    if os.environ.get("CI"):
        pytest.fail("Knot DNS (knotd) is required on CI: run scripts/install-system-packages.sh")
    pytest.skip("Knot DNS (knotd) is not installed")


def start_knot(workdir: Path) -> tuple[KnotServer, ChasingResolver]:
    require_knot()
    knot = KnotServer((CUSTOMER_ZONE, PLATFORM_ZONE, DCV_ZONE), workdir=workdir).start()
    knot.replace(EDGE_TARGET, "A", "127.0.0.1")
    knot.replace(f"*.{EDGE_TARGET}", "CNAME", EDGE_TARGET + ".")
    knot.replace(ELSEWHERE, "A", "192.0.2.80")
    return knot, ChasingResolver((knot.host, knot.port)).start()


def dcv_settings(knot: KnotServer, **overrides: Any) -> dict[str, Any]:
    """The `dcv_*` settings for linkcert to write in the Knot's delegation zone."""
    values: dict[str, Any] = {
        "dcv_zone": DCV_ZONE,
        "dcv_update_server": knot.address,
        "dcv_tsig_key_name": knot.update_key_name,
        "dcv_tsig_algorithm": "hmac-sha256",
        "dcv_tsig_secret": knot.update_secret,
        "dcv_check_servers": (knot.address,),
        "dcv_propagation_timeout": 10.0,
    }
    values.update(overrides)
    return values


@dataclass
class DcvWorld:
    knot: KnotServer
    resolver: ChasingResolver
    pebble: PebbleServer
    http_port: int
    master_key: str

    def settings(self, db_url: str, data_dir: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": data_dir,
            "database_url": db_url,
            "nameservers": (self.resolver.nameserver,),
            "cname_targets": (EDGE_TARGET,),
            "allow_test_domains": True,
            "http_listen": f"127.0.0.1:{self.http_port}",
            "https_listen": "127.0.0.1:0",
            "api_listen": "127.0.0.1:0",
            "master_key": self.master_key,
            "tracking_key": TRACKING_SECRET,
            "dns_timeout": 1.0,
            "acme_directory_url": self.pebble.directory_url,
            "acme_ca_bundle": Path(self.pebble.ca_bundle_path),
            **dcv_settings(self.knot),
        }
        values.update(overrides)
        return Settings.model_validate(values)

    def stop(self) -> None:
        self.pebble.stop()
        self.resolver.stop()
        self.knot.stop()


def start_dcv_world(workdir: Path) -> DcvWorld:
    knot, resolver = start_knot(workdir / "knot")
    http_port = free_port()
    pebble = PebbleServer(
        http_port=http_port, dns_server=resolver.nameserver, workdir=workdir / "pebble"
    ).start()
    return DcvWorld(knot, resolver, pebble, http_port, generate_master_key("test"))
