"""Secured before the switch: certificates through a delegated `_acme-challenge` (DNS-01).

Real parts on loopback: Knot is authoritative for the customer's zone, the platform's zone and
the delegation zone (TSIG-signed updates allowed), Pebble validates DNS-01 through a resolver
that follows the customer's CNAME into the delegation zone, and linkcert runs whole (worker,
edge). One Knot and one Pebble serve the module.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from linkcert.api.schemas import DomainStatusOut
from linkcert.cli import app
from linkcert.domains import (
    DomainStatus,
    create_account,
    domain_status,
    domain_status_for,
    find_account,
    retry_now,
    set_tracking_domain,
)
from linkcert.names import NamePolicy
from linkcert.ownership import dcv_label
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Domain, Event, Order, Store
from linkcert.testbed.waiting import free_port, wait_for_async
from tests.dcv_support import DCV_ZONE, EDGE_TARGET, ELSEWHERE, DcvWorld, start_dcv_world
from tests.e2e_support import https_get, wait_until_secured

pytestmark = [pytest.mark.pebble, pytest.mark.knot]

POLICY = NamePolicy(allow_test_domains=True)
ROLES = Roles(api=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DcvWorld]:
    started = start_dcv_world(tmp_path_factory.mktemp("dcv"))
    yield started
    started.stop()


async def start(world: DcvWorld, tmp_path: Path, **overrides: Any) -> tuple[Runtime, Store]:
    db_url = f"sqlite:///{tmp_path}/linkcert.sqlite3"
    store = Store(db_url)
    runtime = Runtime(world.settings(db_url, tmp_path, **overrides), ROLES, store=store)
    await runtime.start()
    return runtime, store


def labels(store: Store, account: str, name: str) -> tuple[str, str]:
    """The account's own CNAME target label and its delegation label for `name`."""
    with store.session() as session:
        found = find_account(session, account)
        return found.dns_label, dcv_label(found.dcv_secret, name)


def save(world: DcvWorld, store: Store, account: str, name: str, *, delegate: bool = True) -> str:
    """An account saves `name`, whose traffic still goes elsewhere; with `delegate`, the
    customer has added the delegation record. Returns the delegation label."""
    create_account(store, account)
    set_tracking_domain(store, account, name, POLICY)
    world.knot.replace(name, "CNAME", ELSEWHERE + ".")
    _, label = labels(store, account, name)
    if delegate:
        world.knot.replace(f"_acme-challenge.{name}", "CNAME", f"{label}.{DCV_ZONE}.")
    return label


async def recheck_until(
    runtime: Runtime, store: Store, name: str, condition: Callable[[DomainStatus], bool]
) -> DomainStatus:
    """Have the worker look at the domain again (as its periodic re-check would, later) until
    `condition` holds: DNS answers may be cached for a second."""
    asked = 0.0

    def holds() -> DomainStatus | None:
        nonlocal asked
        status = domain_status(store, name)
        if condition(status):
            return status
        if time.monotonic() - asked > 1.0:
            asked = time.monotonic()
            retry_now(store, name)
            runtime.wake()
        return None

    try:
        found = await wait_for_async(holds, f"{name} rechecked", timeout=30, interval=0.1)
    except AssertionError:
        history = [(e.kind, e.message) for e in events(store, name)]
        raise AssertionError(f"{domain_status(store, name)}; events: {history}") from None
    assert found is not None
    return found


def events(store: Store, name: str) -> list[Event]:
    with store.session() as session:
        return list(
            session.scalars(
                select(Event)
                .join(Domain, Domain.id == Event.domain_id)
                .where(Domain.name == name)
                .order_by(Event.id)
            )
        )


def orders(store: Store, name: str) -> list[Order]:
    with store.session() as session:
        return list(
            session.scalars(
                select(Order)
                .join(Domain, Domain.id == Order.domain_id)
                .where(Domain.name == name)
                .order_by(Order.id)
            )
        )


def zone_txt(world: DcvWorld) -> list[str]:
    """Every TXT record left in the delegation zone (none, between orders)."""
    return world.knot.zone_records(DCV_ZONE, "TXT")


async def wait_for_problem(store: Store, name: str, code: str) -> dict[str, str]:
    def found() -> dict[str, str] | None:
        return next((p for p in domain_status(store, name).problems if p["code"] == code), None)

    problem = await wait_for_async(found, f"problem {code} on {name}", timeout=30, interval=0.1)
    assert problem is not None
    return problem


async def test_a_domain_is_secured_before_the_switch_and_serves_https_at_once_after_it(
    world: DcvWorld, tmp_path: Path
) -> None:
    runtime, store = await start(world, tmp_path)
    name = "links.customer.test"
    try:
        label = save(world, store, "shop", name)
        runtime.wake()
        await wait_until_secured(store, name)
        status = domain_status(store, name)
        assert status.dns_state == "delegated" and status.dcv_state == "ok"
        assert status.challenge == "dns-01" and status.secured_in_advance
        started = [e for e in events(store, name) if e.kind == "order_started"]
        assert [e.detail["method"] for e in started] == ["dns-01"]
        assert f"_acme-challenge.{name} \u2192 {label}.{DCV_ZONE}" in started[0].message
        assert zone_txt(world) == []  # the answer was removed after validation
        placed = world.pebble.orders_created()
        # The API and the check say so, with the delegation record.
        shown = DomainStatusOut.of(status, runtime.settings)
        record = f"_acme-challenge.{name}. CNAME {label}.{DCV_ZONE}."
        assert shown.dns_state_text == "Secured in advance: switch your CNAME when ready"
        assert shown.dcv_record is not None and shown.dcv_record["zone"] == record
        assert shown.dcv_state == "ok" and shown.challenge == "dns-01"
        target = f"{label}.{DCV_ZONE}"
        assert shown.dcv == {"ok": True, "expected": target, "found": target}
        checked = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            [
                "check",
                name,
                "--json",
                "--account",
                "shop",
                "--allow-test-domains",
                "--nameserver",
                world.resolver.nameserver,
                "--target",
                EDGE_TARGET,
            ],
            env={"LINKCERT_DCV_ZONE": DCV_ZONE, "LINKCERT_DATABASE_URL": store.url},
        )
        assert checked.exit_code == 0, checked.output
        report = json.loads(checked.stdout)
        assert report["state"] == "delegated"
        assert report["dcv"]["ok"] and report["dcv"]["record"] == record
        assert report["dcv"]["expected"] == report["dcv"]["found"] == f"{label}.{DCV_ZONE}"

        # The switch: traffic now comes here, and the edge already holds the certificate.
        own, _ = labels(store, "shop", name)
        world.knot.replace(name, "CNAME", f"{own}.{EDGE_TARGET}.")
        assert runtime.edge is not None and runtime.edge.https_port
        status_code, _, peer = await asyncio.to_thread(
            https_get, runtime.edge.https_port, name, "/healthz", world.pebble.root_pem()
        )
        assert status_code == 200 and peer["subjectAltName"] == (("DNS", name),)
        await recheck_until(runtime, store, name, lambda s: s.dns_state == "ok")
        assert domain_status(store, name).cert_state == "active"
        assert len(orders(store, name)) == 1 and world.pebble.orders_created() == placed
        assert any(e.kind == "dns_switched" for e in events(store, name))
    finally:
        await runtime.aclose()


async def test_a_wrong_label_or_no_delegation_says_which_record_to_add(
    world: DcvWorld, tmp_path: Path
) -> None:
    runtime, store = await start(world, tmp_path)
    missing, wrong = "go.customer.test", "click.customer.test"
    try:
        label = save(world, store, "one", missing, delegate=False)
        save(world, store, "two", wrong, delegate=False)
        # The second customer points at the first one's label: it names nobody of theirs.
        world.knot.replace(f"_acme-challenge.{wrong}", "CNAME", f"{label}.{DCV_ZONE}.")
        runtime.wake()
        for name, account, code in ((missing, "one", "dcv_missing"), (wrong, "two", None)):
            _, own = labels(store, account, name)
            record = f"_acme-challenge.{name}. CNAME {own}.{DCV_ZONE}."
            if code is None:
                # Not proven by anything: the claim reads the problems, the name is nobody's.
                status = await wait_claim_problem(store, name, account, "dcv_wrong_target")
                problem = next(p for p in status.problems if p["code"] == "dcv_wrong_target")
            else:
                problem = await wait_claim_problem_dict(store, name, account, code)
            assert record in problem["fix"]
            assert domain_status(store, name).cert_state == "none"
        assert zone_txt(world) == [] and len(orders(store, missing) + orders(store, wrong)) == 0
    finally:
        await runtime.aclose()


async def wait_claim_problem(store: Store, name: str, account: str, code: str) -> DomainStatus:
    with store.session() as session:
        account_id = find_account(session, account).id

    def found() -> DomainStatus | None:
        status = domain_status_for(store, name, account_id)
        return status if any(p["code"] == code for p in status.problems) else None

    status = await wait_for_async(found, f"{code} for {name}", timeout=30, interval=0.1)
    assert status is not None
    return status


async def wait_claim_problem_dict(
    store: Store, name: str, account: str, code: str
) -> dict[str, str]:
    status = await wait_claim_problem(store, name, account, code)
    return next(p for p in status.problems if p["code"] == code)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"dcv_tsig_secret": "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="}, "secret differs"),
        ({"dcv_update_server": f"127.0.0.1:{free_port()}"}, "cannot be reached"),
        # Written, but the servers asked never answer it: it is removed again.
        (
            {"dcv_check_servers": (f"127.0.0.1:{free_port()}",), "dcv_propagation_timeout": 0.5},
            "still did not answer",
        ),
    ],
    ids=["bad-tsig-secret", "update-server-down", "never-published"],
)
async def test_an_update_that_fails_says_why_and_leaves_no_record(
    world: DcvWorld, tmp_path: Path, overrides: dict[str, Any], words: str
) -> None:
    runtime, store = await start(world, tmp_path, **overrides)
    name = f"{words.split()[0]}-{len(overrides)}.customer.test"
    try:
        save(world, store, "three", name)
        runtime.wake()
        problem = await wait_for_problem(store, name, "dcv_update_failed")
        assert words in problem["message"]
        assert world.knot.update_secret not in problem["message"]
        status = domain_status(store, name)
        assert status.cert_state == "failed" and status.dns_state == "delegated"
        assert zone_txt(world) == []
        assert [o.status for o in orders(store, name)] == ["abandoned"]
    finally:
        await runtime.aclose()


async def test_caa_allowing_only_http01_keeps_the_domain_on_http01(
    world: DcvWorld, tmp_path: Path
) -> None:
    runtime, store = await start(world, tmp_path)
    name = "links.caa.customer.test"
    # The CAA record of a parent applies to the name (which, being a CNAME, can hold no other).
    world.knot.replace(
        "caa.customer.test", "CAA", '0 issue "letsencrypt.org; validationmethods=http-01"'
    )
    try:
        save(world, store, "four", name)
        own, _ = labels(store, "four", name)
        # Not switched yet: DNS-01 is what CAA forbids, and the page says how to allow it.
        problem = await wait_claim_problem_dict(store, name, "four", "caa_validation_method")
        assert "validationmethods=http-01,dns-01" in problem["fix"]
        assert domain_status(store, name).cert_state == "none"
        # Switched: HTTP-01 through the CNAME, as CAA asks.
        world.knot.replace(name, "CNAME", f"{own}.{EDGE_TARGET}.")
        await recheck_until(runtime, store, name, lambda s: s.cert_state == "active")
        status = domain_status(store, name)
        assert status.challenge == "http-01" and status.dcv_state == "caa_forbids"
        started = [e for e in events(store, name) if e.kind == "order_started"]
        assert [e.detail["method"] for e in started] == ["http-01"]
    finally:
        await runtime.aclose()


async def test_without_its_delegation_a_renewal_falls_back_to_http01(
    world: DcvWorld, tmp_path: Path
) -> None:
    runtime, store = await start(world, tmp_path)
    name = "renew.customer.test"
    try:
        save(world, store, "five", name)
        own, _ = labels(store, "five", name)
        world.knot.replace(name, "CNAME", f"{own}.{EDGE_TARGET}.")
        runtime.wake()
        await wait_until_secured(store, name)
        assert domain_status(store, name).challenge == "dns-01"  # the delegation comes first
        world.knot.remove_name(f"_acme-challenge.{name}")
        await recheck_until(runtime, store, name, lambda s: s.dcv_state == "missing")
        with store.session() as session:
            domain = session.scalar(select(Domain).where(Domain.name == name))
            assert domain is not None and domain.current_certificate is not None
            domain.current_certificate.renew_at = domain.current_certificate.not_before
        await recheck_until(runtime, store, name, lambda s: s.challenge == "http-01")
        started = [e.detail["method"] for e in events(store, name) if e.kind == "order_started"]
        assert started == ["dns-01", "http-01"]
    finally:
        await runtime.aclose()


async def test_a_domain_secured_in_advance_that_loses_its_delegation_is_told_before_expiry(
    world: DcvWorld, tmp_path: Path
) -> None:
    runtime, store = await start(world, tmp_path)
    name = "gone.customer.test"
    try:
        save(world, store, "six", name)
        runtime.wake()
        await wait_until_secured(store, name)
        world.knot.remove_name(f"_acme-challenge.{name}")
        status = await recheck_until(runtime, store, name, lambda s: s.dns_state == "moved")
        assert status.cert_state == "active"  # it keeps serving until it expires
        moved = [e for e in events(store, name) if e.kind == "moved"]
        assert "delegation" in moved[0].message and "cannot be renewed" in moved[0].message
        assert f"{status.not_after:%Y-%m-%d}" in moved[0].message
    finally:
        await runtime.aclose()
