"""The CA rate limits where orders are placed: `Issuer` on a real store with a recording client.

Nothing here talks to a CA: the client records what it is asked and answers as each test says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests

from linkcert.acme.errors import AcmeUnavailable, ChallengeFailed
from linkcert.acme.failures import never_reached_the_ca
from linkcert.acme.orders import (
    AcmeStatus,
    Dns01Challenge,
    Http01Challenge,
    OrderInfo,
    RenewalWindow,
)
from linkcert.acme.revocation import RevocationReason
from linkcert.ca_limits import (
    CERTS_PER_DOMAIN,
    DUPLICATE_CERTS,
    FAILED_AUTHORIZATIONS,
    NEW_ORDERS,
    RateLimit,
)
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.states import CertState, DnsState, FailureClass
from linkcert.store import Account, AcmeAccount, Certificate, Domain, Order, Store
from linkcert.worker.issuance import Issuer
from linkcert.worker.lifecycle import DnsVerdict, IssuanceFailure, Worker
from linkcert.worker.ratelimit import (
    IssuanceBudget,
    RateLimiter,
    bucket_key,
    budget_left,
    order_requests,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
NAME = "links.shop.test"
REGISTRABLE = "shop.test"


def order_info(status: AcmeStatus) -> OrderInfo:
    return OrderInfo(
        url="https://ca.test/order/1",
        status=status,
        identifiers=(NAME,),
        authorization_urls=("https://ca.test/authz/1",),
        finalize_url="https://ca.test/finalize/1",
        error="the CA gave up" if status is AcmeStatus.INVALID else None,
    )


@dataclass
class RecordingClient:
    """Answers like a CA would, as told; `calls` lists every request it was asked to send."""

    new_order_result: OrderInfo | Exception = field(
        default_factory=lambda: order_info(AcmeStatus.PENDING)
    )
    validation_error: Exception | None = None
    calls: list[str] = field(default_factory=list)

    def new_order(
        self, domain: str, *, profile: str | None = None, replaces: str | None = None
    ) -> OrderInfo:
        self.calls.append(f"new_order {domain}")
        if isinstance(self.new_order_result, Exception):
            raise self.new_order_result
        return self.new_order_result

    def load_order(self, order_url: str) -> OrderInfo:
        self.calls.append(f"load_order {order_url}")
        return order_info(AcmeStatus.INVALID)

    def http01_challenges(self, order: OrderInfo) -> list[Http01Challenge]:
        self.calls.append("http01_challenges")
        return []

    def dns01_challenges(self, order: OrderInfo) -> list[Dns01Challenge]:
        self.calls.append("dns01_challenges")
        return []

    def answer(self, challenge: Http01Challenge | Dns01Challenge) -> None:
        self.calls.append("answer")

    def wait_for_authorizations(self, order: OrderInfo, timeout: float | None = None) -> None:
        self.calls.append("wait_for_authorizations")
        if self.validation_error is not None:
            raise self.validation_error

    def finalize(self, order: OrderInfo, csr_pem: bytes, timeout: float | None = None) -> str:
        self.calls.append("finalize")
        raise AssertionError("no test here gets as far as a certificate")

    def offers_renewal_info(self) -> bool:
        return False

    def renewal_window(self, cert_pem: str | bytes) -> RenewalWindow | None:
        return None

    def revoke(
        self,
        cert_pem: str | bytes,
        reason: RevocationReason = RevocationReason.CESSATION_OF_OPERATION,
    ) -> None:
        self.calls.append("revoke")


@dataclass
class Accounts:
    client: RecordingClient
    account_id: int

    def get(self) -> tuple[RecordingClient, int]:
        return self.client, self.account_id


@dataclass
class Setup:
    store: Store
    client: RecordingClient
    limiter: RateLimiter
    issuer: Issuer
    account_id: int
    domain_id: int

    def left(self) -> dict[str, float]:
        keys = [r.key for r in order_requests(self.account_id, NAME, REGISTRABLE)]
        names = {r.key: r.limit for r in order_requests(self.account_id, NAME, REGISTRABLE)}
        return {names[key]: value for key, value in budget_left(self.store, keys, NOW).items()}


LIMITS = {
    NEW_ORDERS: RateLimit(300, 3 * 3600),
    CERTS_PER_DOMAIN: RateLimit(50, 7 * 86400),
    DUPLICATE_CERTS: RateLimit(5, 7 * 86400),
    FAILED_AUTHORIZATIONS: RateLimit(5, 3600),
}


def add_account(store: Store) -> int:
    with store.session() as session:
        account = AcmeAccount(directory_url="https://ca.test/dir", key_encrypted=b"unused")
        session.add(account)
        session.flush()
        return account.id


def add_domain(store: Store, name: str = NAME, *, with_certificate: bool = False) -> int:
    with store.session() as session:
        owner = Account(name=f"owner of {name}")  # proven before per-account proof
        session.add(owner)
        session.flush()
        domain = Domain(
            name=name,
            unicode_name=name,
            registrable=REGISTRABLE,
            dns_state=DnsState.OK,
            next_attempt_at=NOW,
            problems=[],
            account_id=owner.id,
            proof="legacy",
        )
        session.add(domain)
        session.flush()
        if with_certificate:
            cert = Certificate(
                domain_id=domain.id,
                chain_pem="",
                serial="01",
                issuer="Test CA",
                not_before=NOW - timedelta(days=60),
                not_after=NOW + timedelta(days=1),
                fingerprint_sha256="00" * 32,
            )
            session.add(cert)
            session.flush()
            domain.current_certificate_id = cert.id
            domain.cert_state = CertState.ACTIVE
        return domain.id


def make_setup(
    store: Store, limits: dict[str, RateLimit] | None = None, *, reserve: float = 0.2
) -> Setup:
    account_id = add_account(store)
    domain_id = add_domain(store)
    client = RecordingClient()
    limiter = RateLimiter(
        store, LIMITS if limits is None else limits, lambda: NOW, renewal_reserve=reserve
    )
    keys = MasterKeys.parse(generate_master_key("t"))
    issuer = Issuer(store, keys, Accounts(client, account_id), rate_limiter=limiter)
    return Setup(store, client, limiter, issuer, account_id, domain_id)


def refused_connection() -> AcmeUnavailable:
    """A real refused connection, wrapped the way the ACME client wraps it."""
    try:
        requests.post("http://127.0.0.1:1/acme/new-order", timeout=5)
    except requests.exceptions.ConnectionError as exc:
        error = AcmeUnavailable("creating an order: could not connect")
        error.__cause__ = exc
        return error
    raise AssertionError("something answered on 127.0.0.1:1")


def empty_orders_bucket(setup: Setup) -> None:
    # Exactly the burst: a refused probe would take a turn in the bucket's waiting line.
    orders = order_requests(setup.account_id, NAME, REGISTRABLE)[0]
    for _ in range(setup.limiter.limits[orders.limit].burst):
        assert setup.limiter.acquire([orders], NOW, renewal=True).granted


async def test_an_empty_bucket_holds_the_order_back_and_nothing_reaches_the_ca(
    store: Store,
) -> None:
    setup = make_setup(store, {NEW_ORDERS: RateLimit(2, 7200)}, reserve=0)
    empty_orders_bucket(setup)

    with pytest.raises(IssuanceFailure) as caught:
        await setup.issuer.obtain(setup.domain_id)
    failure = caught.value
    assert failure.failure is FailureClass.RATE_LIMITED
    assert failure.retry_after == pytest.approx(3600.0)
    assert "new orders per ACME account (2 per 2 hours)" in failure.message
    assert "2030-01-01 01:00 UTC, in 1 h" in failure.message
    assert "nothing needs to be done" in failure.message
    assert setup.client.calls == []


async def test_the_worker_schedules_the_domain_for_when_the_budget_allows(store: Store) -> None:
    setup = make_setup(store, {NEW_ORDERS: RateLimit(2, 7200)})
    empty_orders_bucket(setup)

    async def dns_ok(name: str) -> DnsVerdict:
        return DnsVerdict(DnsState.OK)

    worker = Worker(store, dns_ok, setup.issuer.obtain, clock=lambda: NOW)
    await worker.run_until_idle()
    with store.session() as session:
        domain = session.get(Domain, setup.domain_id)
        assert domain is not None
        assert domain.failure_class == FailureClass.RATE_LIMITED
        assert domain.next_attempt_at is not None
        assert domain.next_attempt_at >= NOW + timedelta(hours=1)
    assert setup.client.calls == []


async def test_a_failed_validation_keeps_the_order_counted_and_the_failure_recorded(
    store: Store,
) -> None:
    setup = make_setup(store)
    setup.client.validation_error = ChallengeFailed(
        "validation failed", domain=NAME, detail="connection refused", code="connection"
    )
    with pytest.raises(IssuanceFailure) as caught:
        await setup.issuer.obtain(setup.domain_id)
    assert caught.value.failure is FailureClass.CHALLENGE_FAILED
    assert setup.client.calls[0] == f"new_order {NAME}"
    # The CA counted the order and the failed validation; no certificate, so none counted.
    assert setup.left() == {
        NEW_ORDERS: 299.0,
        CERTS_PER_DOMAIN: 50.0,
        DUPLICATE_CERTS: 5.0,
        FAILED_AUTHORIZATIONS: 4.0,
    }


async def test_failed_validations_stop_new_orders_for_that_name(store: Store) -> None:
    setup = make_setup(store, {**LIMITS, FAILED_AUTHORIZATIONS: RateLimit(1, 720)})
    setup.client.validation_error = ChallengeFailed(
        "validation failed", domain=NAME, detail="404", code="unauthorized"
    )
    with pytest.raises(IssuanceFailure):
        await setup.issuer.obtain(setup.domain_id)
    setup.client.calls.clear()

    with pytest.raises(IssuanceFailure) as caught:
        await setup.issuer.obtain(setup.domain_id)
    assert caught.value.failure is FailureClass.RATE_LIMITED
    assert caught.value.retry_after == pytest.approx(720.0)
    assert f"failed validations per name ({NAME}: 1 per 12 minutes)" in caught.value.message
    assert setup.client.calls == []


async def test_an_order_that_never_reached_the_ca_is_given_back(store: Store) -> None:
    setup = make_setup(store)
    setup.client.new_order_result = refused_connection()
    with pytest.raises(IssuanceFailure) as caught:
        await setup.issuer.obtain(setup.domain_id)
    assert caught.value.failure is FailureClass.CA_UNAVAILABLE
    assert setup.left() == {
        NEW_ORDERS: 300.0,
        CERTS_PER_DOMAIN: 50.0,
        DUPLICATE_CERTS: 5.0,
        FAILED_AUTHORIZATIONS: 5.0,
    }


async def test_an_order_that_may_have_reached_the_ca_stays_counted(store: Store) -> None:
    setup = make_setup(store)
    lost = AcmeUnavailable("creating an order: no answer in time")
    lost.__cause__ = requests.exceptions.ReadTimeout("read timed out")
    setup.client.new_order_result = lost
    with pytest.raises(IssuanceFailure):
        await setup.issuer.obtain(setup.domain_id)
    assert setup.left()[NEW_ORDERS] == 299.0
    assert setup.left()[CERTS_PER_DOMAIN] == 49.0


async def test_an_invalid_order_gives_back_only_the_certificate_limits(store: Store) -> None:
    setup = make_setup(store)
    setup.client.new_order_result = order_info(AcmeStatus.INVALID)
    with pytest.raises(IssuanceFailure) as caught:
        await setup.issuer.obtain(setup.domain_id)
    assert caught.value.failure is FailureClass.CA_REJECTED
    assert setup.left() == {
        NEW_ORDERS: 299.0,
        CERTS_PER_DOMAIN: 50.0,
        DUPLICATE_CERTS: 5.0,
        FAILED_AUTHORIZATIONS: 5.0,
    }


async def test_a_resumed_order_is_not_counted_again(store: Store) -> None:
    setup = make_setup(store)
    empty_orders_bucket(setup)
    with store.session() as session:
        session.add(
            Order(
                domain_id=setup.domain_id,
                acme_account_id=setup.account_id,
                url="https://ca.test/order/earlier",
                status="pending",
                info={},
                key_encrypted=setup.issuer.keys.encrypt(b"unused", f"cert-key:{NAME}"),
                csr_pem="",
            )
        )
    with pytest.raises(IssuanceFailure) as caught:
        await setup.issuer.obtain(setup.domain_id)
    # It got past the empty bucket to the CA, which said the order is dead.
    assert caught.value.failure is FailureClass.CA_REJECTED
    assert setup.client.calls == ["load_order https://ca.test/order/earlier"]
    assert set(setup.left()) == {NEW_ORDERS}  # no other bucket was touched


def test_renewals_go_first_when_the_budget_is_short(store: Store) -> None:
    setup = make_setup(store, {NEW_ORDERS: RateLimit(10, 100)})
    renewing_id = add_domain(store, "renew.shop.test", with_certificate=True)
    budget = IssuanceBudget(setup.limiter)
    for _ in range(8):
        budget.before_new_order(setup.domain_id, setup.account_id, exempt=False)
    with pytest.raises(IssuanceFailure) as caught:
        budget.before_new_order(setup.domain_id, setup.account_id, exempt=False)
    assert caught.value.failure is FailureClass.RATE_LIMITED
    # The reserve (a fifth of the burst) is the renewals'.
    budget.before_new_order(renewing_id, setup.account_id, exempt=False)
    budget.before_new_order(renewing_id, setup.account_id, exempt=False)
    with pytest.raises(IssuanceFailure):
        budget.before_new_order(renewing_id, setup.account_id, exempt=False)


def test_exempt_renewals_are_not_counted(store: Store) -> None:
    setup = make_setup(store)
    empty_orders_bucket(setup)
    budget = IssuanceBudget(setup.limiter)
    charge = budget.before_new_order(setup.domain_id, setup.account_id, exempt=True)
    assert charge.taken == () and charge.exempt
    budget.validation_failed(charge)
    assert set(setup.left()) == {NEW_ORDERS}  # no other bucket was touched


def test_bucket_keys_are_per_account_and_name() -> None:
    assert bucket_key(NEW_ORDERS, 3) == "new_orders:3"
    assert bucket_key(CERTS_PER_DOMAIN, 3, "shop.test") == "certs_per_domain:3:shop.test"
    requests_ = order_requests(3, NAME, REGISTRABLE)
    assert [(r.limit, r.about, r.take) for r in requests_] == [
        (NEW_ORDERS, "", True),
        (CERTS_PER_DOMAIN, REGISTRABLE, True),
        (DUPLICATE_CERTS, NAME, True),
        (FAILED_AUTHORIZATIONS, NAME, False),
    ]


def test_what_counts_as_never_reaching_the_ca() -> None:
    assert not never_reached_the_ca(requests.exceptions.ReadTimeout("slow"))
    assert never_reached_the_ca(requests.exceptions.ConnectTimeout("no SYN-ACK"))
    assert not never_reached_the_ca(AcmeUnavailable("the CA failed on its side"))
