"""The ACME client against a real Pebble, validating HTTP-01 through an in-test responder."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from dnslib import QTYPE, RR, A
from dnslib.server import DNSLogger, DNSServer

from linkcert.acme import (
    AccountKey,
    AcmeClient,
    AcmeRejected,
    AcmeSettings,
    AcmeStatus,
    AcmeTimeout,
    AcmeUnavailable,
    ChainInfo,
    ChallengeFailed,
    Http01Challenge,
    OrderInfo,
    ari_certificate_id,
    make_csr,
    verify_chain,
)
from linkcert.testbed import ChallengeResponder, PebbleServer, new_eab_hmac_key
from linkcert.testbed.waiting import free_port

pytestmark = pytest.mark.pebble

PebbleFactory = Callable[..., PebbleServer]

# Names under this label resolve to an address where nothing listens on the HTTP-01 port.
REFUSING_LABEL = "refused"


class LoopbackResolver:
    """Answers A 127.0.0.1 for every name (127.0.0.2 under REFUSING_LABEL), no AAAA."""

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = request.q.qname
        if request.q.qtype == QTYPE.A:
            labels = str(name).rstrip(".").split(".")
            address = "127.0.0.2" if REFUSING_LABEL in labels else "127.0.0.1"
            reply.add_answer(RR(name, QTYPE.A, rdata=A(address), ttl=60))
        return reply


@pytest.fixture(scope="module")
def pebble_dns_server() -> Iterator[str]:
    quiet = DNSLogger(logf=lambda _line: None)
    server = DNSServer(LoopbackResolver(), address="127.0.0.1", port=0, logger=quiet)
    server.start_thread()
    port = server.server.server_address[1]
    yield f"127.0.0.1:{port}"
    server.stop()


def fresh_domain(label: str = "links") -> str:
    # A name per test: Pebble reuses valid authorizations, which would skip validation.
    return f"{label}.c{uuid.uuid4().hex[:10]}.example.test"


def new_certificate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def obtain(
    client: AcmeClient,
    responder: ChallengeResponder,
    domain: str,
    key: ec.EllipticCurvePrivateKey,
) -> str:
    """The whole issuance the worker performs, in one go."""
    order = client.new_order(domain)
    for challenge in client.http01_challenges(order):
        responder.publish(challenge)
        client.answer(challenge)
    client.wait_for_authorizations(order)
    return client.finalize(order, make_csr(key, domain))


@pytest.fixture
def client(pebble_acme_settings: AcmeSettings) -> Iterator[AcmeClient]:
    with AcmeClient(pebble_acme_settings, AccountKey.generate()) as acme:
        yield acme


def test_register_twice_with_the_same_key_returns_the_same_account(
    pebble_acme_settings: AcmeSettings,
) -> None:
    key = AccountKey.generate()
    with AcmeClient(pebble_acme_settings, key) as first:
        uri = first.register()
    assert uri.startswith("https://")
    with AcmeClient(pebble_acme_settings, AccountKey.from_pem(key.to_pem())) as second:
        assert second.register() == uri
    with AcmeClient(pebble_acme_settings, AccountKey.generate()) as other:
        assert other.register() != uri


def test_rsa_account_key_registers(pebble_acme_settings: AcmeSettings) -> None:
    with AcmeClient(pebble_acme_settings, AccountKey.generate("rsa-2048")) as acme:
        assert acme.register().startswith("https://")


def test_full_order_gives_a_chain_that_verifies_against_pebbles_root(
    client: AcmeClient, acme_http_responder: ChallengeResponder, pebble: PebbleServer
) -> None:
    domain = fresh_domain()
    key = new_certificate_key()
    order = client.new_order(domain)
    assert order.status is AcmeStatus.PENDING
    assert order.identifiers == (domain,)

    challenges = client.http01_challenges(order)
    assert [c.domain for c in challenges] == [domain]
    challenge = challenges[0]
    assert challenge.needs_answer
    assert challenge.key_authorization == f"{challenge.token}.{client.account_key.thumbprint()}"
    acme_http_responder.publish(challenge)
    client.answer(challenge)
    client.wait_for_authorizations(order)
    chain = client.finalize(order, make_csr(key, domain))

    info = verify_chain(chain, key, domain, trusted_roots_pem=pebble.root_pem())
    assert isinstance(info, ChainInfo)
    assert info.names == (domain,)
    assert info.issuer_cn.startswith("Pebble Intermediate CA")
    assert info.not_before < info.not_after
    assert pebble.cert_status(info.serial_hex).status == "Valid"
    assert f"{domain}{challenge.path}" in acme_http_responder.requests_seen
    assert client.load_order(order.url).status is AcmeStatus.VALID


def test_order_resumes_from_its_url_in_a_fresh_client(
    pebble_acme_settings: AcmeSettings,
    acme_http_responder: ChallengeResponder,
    pebble: PebbleServer,
) -> None:
    account_key = AccountKey.generate()
    domain = fresh_domain()
    key = new_certificate_key()
    with AcmeClient(pebble_acme_settings, account_key) as before_restart:
        account_uri = before_restart.register()
        order = before_restart.new_order(domain)
        [challenge] = before_restart.http01_challenges(order)
        acme_http_responder.publish(challenge)
        before_restart.answer(challenge)
        # What the worker stored, as JSON, before the process stopped.
        stored_order = order.to_json()
        stored_challenge = challenge.to_json()

    saved_key = AccountKey.from_pem(account_key.to_pem())
    with AcmeClient(pebble_acme_settings, saved_key, account_uri) as after_restart:
        resumed = after_restart.load_order(OrderInfo.from_json(stored_order).url)
        assert resumed.identifiers == (domain,)
        # Answering again after a restart is harmless: the challenge is no longer pending.
        [again] = after_restart.http01_challenges(resumed)
        assert again.token == Http01Challenge.from_json(stored_challenge).token
        after_restart.answer(again)
        chain = after_restart.finalize(resumed, make_csr(key, domain))
        # An order finalized before a restart only needs its chain downloaded.
        assert after_restart.finalize(resumed, make_csr(key, domain)) == chain
        assert after_restart.account_uri == account_uri
    verify_chain(chain, key, domain, trusted_roots_pem=pebble.root_pem())


def test_answering_a_challenge_again_after_validation_is_harmless(
    client: AcmeClient, acme_http_responder: ChallengeResponder
) -> None:
    order = client.new_order(fresh_domain())
    [challenge] = client.http01_challenges(order)
    acme_http_responder.publish(challenge)
    client.answer(challenge)
    client.wait_for_authorizations(order)
    assert challenge.needs_answer  # the stored copy still says pending
    client.answer(challenge)


def test_loading_an_unknown_order_is_rejected(client: AcmeClient, pebble: PebbleServer) -> None:
    missing = pebble.directory_url.replace("/dir", "/my-order/no-such-order")
    with pytest.raises(AcmeRejected) as rejected:
        client.load_order(missing)
    assert missing in str(rejected.value)


def test_finalize_waits_for_validation_of_an_answered_order(
    client: AcmeClient, acme_http_responder: ChallengeResponder
) -> None:
    domain = fresh_domain()
    key = new_certificate_key()
    order = client.new_order(domain)
    for challenge in client.http01_challenges(order):
        acme_http_responder.publish(challenge)
        client.answer(challenge)
    verify_chain(client.finalize(order, make_csr(key, domain)), key, domain)


def test_csr_for_another_name_is_refused_before_asking_the_ca(client: AcmeClient) -> None:
    order = client.new_order(fresh_domain())
    with pytest.raises(ValueError, match="make the CSR for the order's name"):
        client.finalize(order, make_csr(new_certificate_key(), fresh_domain()))


def test_unserved_token_gives_challenge_failed_with_the_cas_detail(client: AcmeClient) -> None:
    domain = fresh_domain()
    order = client.new_order(domain)
    [challenge] = client.http01_challenges(order)
    client.answer(challenge)  # without publishing the key authorization: the edge answers 404
    with pytest.raises(ChallengeFailed) as failure:
        client.wait_for_authorizations(order)
    assert failure.value.domain == domain
    assert failure.value.code == "unauthorized"
    assert failure.value.detail is not None and "404" in failure.value.detail
    assert domain in str(failure.value)
    # The dead order says the same when finalized.
    with pytest.raises(ChallengeFailed):
        client.finalize(order, make_csr(new_certificate_key(), domain))


def test_unreachable_name_gives_challenge_failed_about_the_connection(client: AcmeClient) -> None:
    domain = fresh_domain(REFUSING_LABEL)
    order = client.new_order(domain)
    [challenge] = client.http01_challenges(order)
    client.answer(challenge)
    with pytest.raises(ChallengeFailed) as failure:
        client.wait_for_authorizations(order)
    assert failure.value.code == "connection"
    assert "port 80" in str(failure.value)


def test_waiting_beyond_the_timeout_raises_acme_timeout(client: AcmeClient) -> None:
    order = client.new_order(fresh_domain())
    with pytest.raises(AcmeTimeout) as timeout:
        client.wait_for_authorizations(order, timeout=0.3)
    assert timeout.value.retryable


def test_reused_valid_authorization_needs_no_answer(
    pebble_factory: PebbleFactory, acme_http_responder: ChallengeResponder
) -> None:
    reusing = pebble_factory(authz_reuse_percent=100)
    domain = fresh_domain()
    with AcmeClient(reusing.acme_settings(), AccountKey.generate()) as acme:
        obtain(acme, acme_http_responder, domain, new_certificate_key())
        second = acme.new_order(domain)
        [challenge] = acme.http01_challenges(second)
        assert challenge.authorization_status is AcmeStatus.VALID
        assert not challenge.needs_answer
        key = new_certificate_key()
        acme.answer(challenge)  # a no-op
        verify_chain(acme.finalize(second, make_csr(key, domain)), key, domain)


def test_eab_with_good_credentials_registers_and_without_them_is_rejected(
    pebble_factory: PebbleFactory,
) -> None:
    hmac_key = new_eab_hmac_key()
    strict = pebble_factory(eab_required=True, eab_mac_keys={"kid-1": hmac_key})

    key = AccountKey.generate()
    with AcmeClient(strict.acme_settings(eab_kid="kid-1", eab_hmac_key=hmac_key), key) as ok:
        uri = ok.register()
    # Once registered, the key finds its account without the credentials.
    with AcmeClient(strict.acme_settings(), key) as lookup:
        assert lookup.register() == uri

    with (
        AcmeClient(strict.acme_settings(), AccountKey.generate()) as missing,
        pytest.raises(AcmeRejected) as no_binding,
    ):
        missing.register()
    assert no_binding.value.code == "externalAccountRequired"
    assert "eab_kid" in str(no_binding.value)

    wrong = strict.acme_settings(eab_kid="kid-1", eab_hmac_key=new_eab_hmac_key())
    with (
        AcmeClient(wrong, AccountKey.generate()) as forged,
        pytest.raises(AcmeRejected) as bad_binding,
    ):
        forged.register()
    assert "eab_hmac_key" in str(bad_binding.value)


def test_concurrent_orders_from_threads_share_one_client(
    client: AcmeClient, acme_http_responder: ChallengeResponder, pebble: PebbleServer
) -> None:
    domains = [fresh_domain() for _ in range(8)]
    keys = {domain: new_certificate_key() for domain in domains}
    with ThreadPoolExecutor(max_workers=8) as pool:
        chains = list(pool.map(lambda d: obtain(client, acme_http_responder, d, keys[d]), domains))
    root = pebble.root_pem()
    serials = {
        verify_chain(chain, keys[domain], domain, root).serial_hex
        for domain, chain in zip(domains, chains, strict=True)
    }
    assert len(serials) == len(domains)


def test_concurrent_orders_survive_frequent_bad_nonces(
    pebble_factory: PebbleFactory,
    acme_http_responder: ChallengeResponder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="linkcert.acme.network")
    grumpy = pebble_factory(nonce_reject_percent=50)
    domains = [fresh_domain() for _ in range(6)]
    keys = {domain: new_certificate_key() for domain in domains}
    settings = grumpy.acme_settings(bad_nonce_attempts=30)
    with (
        AcmeClient(settings, AccountKey.generate()) as acme,
        ThreadPoolExecutor(max_workers=6) as pool,
    ):
        chains = list(pool.map(lambda d: obtain(acme, acme_http_responder, d, keys[d]), domains))
    for domain, chain in zip(domains, chains, strict=True):
        verify_chain(chain, keys[domain], domain, grumpy.root_pem())
    retried = [r for r in caplog.records if "rejected a nonce" in r.getMessage()]
    assert len(retried) > 5  # about one request in two was signed again


async def test_client_works_from_asyncio_to_thread(
    client: AcmeClient, acme_http_responder: ChallengeResponder
) -> None:
    domains = [fresh_domain() for _ in range(3)]
    keys = {domain: new_certificate_key() for domain in domains}
    chains = await asyncio.gather(
        *(asyncio.to_thread(obtain, client, acme_http_responder, d, keys[d]) for d in domains)
    )
    for domain, chain in zip(domains, chains, strict=True):
        verify_chain(chain, keys[domain], domain)


def test_renewal_order_on_a_ca_without_ari(
    client: AcmeClient, acme_http_responder: ChallengeResponder
) -> None:
    domain = fresh_domain()
    first_key = new_certificate_key()
    first = obtain(client, acme_http_responder, domain, first_key)
    assert client.renewal_window(first) is None  # Pebble 2.4 has no ARI
    renewal = client.new_order(domain, replaces=ari_certificate_id(first))
    for challenge in client.http01_challenges(renewal):
        acme_http_responder.publish(challenge)
        client.answer(challenge)
    key = new_certificate_key()
    verify_chain(client.finalize(renewal, make_csr(key, domain)), key, domain)


def test_short_certificate_validity_is_honoured(
    pebble_factory: PebbleFactory, acme_http_responder: ChallengeResponder
) -> None:
    brief = pebble_factory(certificate_validity_seconds=600)
    domain = fresh_domain()
    key = new_certificate_key()
    with AcmeClient(brief.acme_settings(), AccountKey.generate()) as acme:
        orders_before = brief.orders_created()
        chain = obtain(acme, acme_http_responder, domain, key)
    assert brief.orders_created() == orders_before + 1
    info = verify_chain(chain, key, domain, brief.root_pem())
    assert 590 <= info.lifetime.total_seconds() <= 610


def test_revoke_marks_the_certificate_revoked(
    client: AcmeClient, acme_http_responder: ChallengeResponder, pebble: PebbleServer
) -> None:
    domain = fresh_domain()
    key = new_certificate_key()
    chain = obtain(client, acme_http_responder, domain, key)
    serial = verify_chain(chain, key, domain).serial_hex
    client.revoke(chain)
    status = pebble.cert_status(serial)
    assert status.revoked
    assert status.reason == 5
    client.revoke(chain)  # already revoked: still fine


def test_unreachable_directory_is_unavailable_quickly() -> None:
    port = free_port()  # nothing listens there
    settings = AcmeSettings(directory_url=f"https://127.0.0.1:{port}/dir", retry_pause=0.05)
    started = time.monotonic()
    with (
        AcmeClient(settings, AccountKey.generate()) as acme,
        pytest.raises(AcmeUnavailable) as unavailable,
    ):
        acme.register()
    assert time.monotonic() - started < 3
    assert "connection refused" in str(unavailable.value)
    assert unavailable.value.retryable


def test_untrusted_ca_certificate_is_reported_as_such(pebble: PebbleServer) -> None:
    settings = AcmeSettings(directory_url=pebble.directory_url)  # without Pebble's listener CA
    with (
        AcmeClient(settings, AccountKey.generate()) as acme,
        pytest.raises(AcmeUnavailable) as unavailable,
    ):
        acme.register()
    assert "ca_bundle" in str(unavailable.value)
