"""`linkcert demo`: the whole product on one machine, offline.

Starts a local ACME CA (Debian's Pebble) and a local DNS server, configures linkcert against
them, creates a demo account whose domain's CNAME is already in place, waits until the domain
is secured, mints a tracked link and prints what to open and what to `curl`.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from linkcert.auth import create_token
from linkcert.config import Settings
from linkcert.domains import create_account, domain_status, set_tracking_domain
from linkcert.keys import generate_master_key
from linkcert.links import create_link
from linkcert.names import NamePolicy
from linkcert.service.runtime import Runtime
from linkcert.store import Account, Store
from linkcert.testbed.localdns import LocalDNSServer
from linkcert.testbed.pebble import PebbleServer
from linkcert.testbed.waiting import free_port

DEMO_TARGET = "edge.linkcert.test"
DEMO_ACCOUNT = "demo-shop"
DEMO_DOMAIN = "links.demo-shop.test"
DEMO_DESTINATION = "https://demo-shop.test/spring-sale?utm_source=email"


def _secret(path: Path, make: Callable[[], str]) -> str:
    """A demo secret kept in the data directory so that restarts can decrypt what was stored."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


@dataclass
class DemoInfo:
    domain: str
    https_port: int
    http_port: int
    api_port: int | None
    ca_root: Path
    tracked_url: str
    cert_state: str
    account_id: int
    api_token: str
    serving: bool = True

    def instructions(self) -> str:
        https_url = self.tracked_url.replace(self.domain, f"{self.domain}:{self.https_port}", 1)
        http_url = https_url.replace("https://", "http://", 1).replace(
            f":{self.https_port}", f":{self.http_port}", 1
        )
        lines = [
            f"{self.domain} is {self.cert_state}.",
            "",
            "A tracked link over HTTPS (trusting only the demo CA's root):",
            f"  curl -i --cacert {self.ca_root} "
            f"--resolve {self.domain}:{self.https_port}:127.0.0.1 '{https_url}'",
            "The same link over plain HTTP (links in emails already sent keep working):",
            f"  curl -i --resolve {self.domain}:{self.http_port}:127.0.0.1 '{http_url}'",
        ]
        if self.api_port:
            api = f"http://127.0.0.1:{self.api_port}"
            lines += [
                "",
                f"Account page: {api}/login (log in with the API token below)",
                f"API documentation: {api}/docs",
                "The demo account's status through the API:",
                f"  curl -s -H 'Authorization: Bearer {self.api_token}' "
                f"{api}/api/v1/accounts/{self.account_id}/tracking-domain",
            ]
        if self.serving:
            lines += ["", "Press Ctrl-C to stop."]
        return "\n".join(lines)


async def run_demo(
    data_dir: Path,
    *,
    once: bool = False,
    wait_seconds: float = 120.0,
    report: Callable[[str], None] = print,
) -> DemoInfo:
    """Run the demo; with `once`, stop after the link answers instead of serving on."""
    # Absolute, so every path handed to Pebble and printed works from any directory.
    data_dir = data_dir.resolve()  # noqa: ASYNC240  (once, at start)
    data_dir.mkdir(parents=True, exist_ok=True)
    master = _secret(data_dir / "master.key", lambda: generate_master_key("demo"))
    track = _secret(data_dir / "tracking.key", lambda: secrets.token_urlsafe(32))
    http_port, https_port, api_port = free_port(), free_port(), free_port()

    with LocalDNSServer() as dns:
        dns.add(DEMO_TARGET, "A", "127.0.0.1")
        report(f"local DNS server on {dns.nameserver}")
        with PebbleServer(
            http_port=http_port, dns_server=dns.nameserver, workdir=data_dir / "pebble"
        ) as pebble:
            report(f"local ACME CA (Pebble) at {pebble.directory_url}")
            ca_root = data_dir / "demo-ca-root.pem"
            ca_root.write_text(pebble.root_pem())
            settings = Settings(
                data_dir=data_dir,
                acme_directory_url=pebble.directory_url,
                acme_ca_bundle=Path(pebble.ca_bundle_path),
                nameservers=(dns.nameserver,),
                cname_targets=(DEMO_TARGET,),
                allow_test_domains=True,
                http_listen=f"127.0.0.1:{http_port}",
                https_listen=f"127.0.0.1:{https_port}",
                api_listen=f"127.0.0.1:{api_port}",
                master_key=master,  # type: ignore[arg-type]
                tracking_key=track,  # type: ignore[arg-type]
            )
            store = Store(settings.effective_database_url)
            store.migrate()
            _point_demo_domain(dns, store)
            runtime = Runtime(settings, store=store)
            await runtime.start()
            try:
                info = await _provision(runtime, store, settings, ca_root, report, wait_seconds)
                info.serving = not once
                report(info.instructions())
                if not once:
                    await runtime.stop_event.wait()
                return info
            finally:
                await runtime.aclose()


def _point_demo_domain(dns: LocalDNSServer, store: Store) -> None:
    """The demo account's own records, as its customer would set them up: a CNAME to the
    account's own target (served like the platform's wildcard record would) and the TXT."""
    with store.session() as session:
        label = session.scalar(select(Account.dns_label).where(Account.name == DEMO_ACCOUNT))
    if label is None:
        label = create_account(store, DEMO_ACCOUNT, ["owner@demo-shop.test"]).dns_label
    own_target = f"{label}.{DEMO_TARGET}"
    dns.add(own_target, "A", "127.0.0.1")
    dns.add(DEMO_DOMAIN, "CNAME", own_target + ".")
    dns.add(f"_linkcert.{DEMO_DOMAIN}", "TXT", f'"linkcert={label}"')


async def _provision(
    runtime: Runtime,
    store: Store,
    settings: Settings,
    ca_root: Path,
    report: Callable[[str], None],
    wait_seconds: float,
) -> DemoInfo:
    policy = NamePolicy.from_settings(settings)
    with store.session() as session:
        account_id = session.scalar(select(Account.id).where(Account.name == DEMO_ACCOUNT))
    if account_id is None:
        account_id = create_account(store, DEMO_ACCOUNT, ["owner@demo-shop.test"]).id
    # A fresh token each run: tokens are stored hashed, so an old one cannot be shown again.
    api_token, _ = create_token(store, account_id, "demo")
    set_tracking_domain(store, DEMO_ACCOUNT, DEMO_DOMAIN, policy)
    runtime.wake()
    report(f"saved {DEMO_DOMAIN} for account {DEMO_ACCOUNT!r}; securing it…")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    status = domain_status(store, DEMO_DOMAIN)
    while status.cert_state != "active" and loop.time() < deadline:
        await asyncio.sleep(0.2)
        status = domain_status(store, DEMO_DOMAIN)
    while DEMO_DOMAIN not in runtime.cache and loop.time() < deadline:
        await asyncio.sleep(0.1)
    link = create_link(store, runtime.tracking_key, DEMO_DOMAIN, DEMO_DESTINATION)
    assert runtime.edge is not None
    return DemoInfo(
        domain=DEMO_DOMAIN,
        https_port=runtime.edge.https_port or 0,
        http_port=runtime.edge.http_port or 0,
        api_port=runtime.api_port,
        ca_root=ca_root,
        tracked_url=link.url,
        account_id=account_id,
        api_token=api_token,
        cert_state="secured" if status.cert_state == "active" else status.cert_state,
    )
