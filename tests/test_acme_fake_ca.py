"""The client against a scripted fake CA, for what Pebble 2.4 never does.

How failures are sorted (rate limits, 5xx, badNonce, refusals), and ACME Renewal Information
(Pebble 2.4 has no ARI). The fake speaks just enough ACME over plain HTTP: a directory, nonces,
and endpoints whose answers each test scripts.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from linkcert.acme import (
    AccountKey,
    AcmeClient,
    AcmeRateLimited,
    AcmeRejected,
    AcmeSettings,
    AcmeUnavailable,
    ari_certificate_id,
)
from linkcert.acme.certs import make_csr
from linkcert.acme.network import retry_after_seconds
from linkcert.acme.orders import AcmeStatus, OrderInfo
from linkcert.keys import generate_private_key

PROBLEM = "urn:ietf:params:acme:error:"


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def problem(cls, status: int, code: str, detail: str, **headers: str) -> Reply:
        return cls(status, {"type": PROBLEM + code, "detail": detail}, headers)


class FakeCA:
    """Answers each "METHOD /path" with its scripted replies in turn, the last one repeating."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.payloads: dict[str, list[Any]] = {}
        self._script: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        base = self.url("")
        self.script("GET /directory", Reply(200, {
            "newNonce": f"{base}/nonce",
            "newAccount": f"{base}/account",
            "newOrder": f"{base}/order",
            "revokeCert": f"{base}/revoke",
            "keyChange": f"{base}/key-change",
        }))  # fmt: skip
        self.script("HEAD /nonce", Reply(200))
        self.script(
            "POST /account",
            Reply(201, {"status": "valid"}, {"Location": f"{base}/account/1"}),
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def script(self, request: str, *replies: Reply) -> None:
        with self._lock:
            self._script[request] = list(replies)

    def next_reply(self, request: str, body: bytes) -> Reply:
        with self._lock:
            self.hits[request] += 1
            if body:
                self.payloads.setdefault(request, []).append(_jws_payload(body))
            replies = self._script.get(request)
            if not replies:
                return Reply(404, {"type": PROBLEM + "malformed", "detail": "no such resource"})
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ca = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                sent = self.rfile.read(length) if length else b""
                reply = ca.next_reply(f"{self.command} {self.path}", sent)
                if isinstance(reply.body, str):
                    body, content_type = reply.body.encode(), "text/html"
                elif reply.body is not None:
                    body = json.dumps(reply.body).encode()
                    content_type = (
                        "application/problem+json" if reply.status >= 400 else "application/json"
                    )
                else:
                    body, content_type = b"", "application/json"
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Replay-Nonce", secrets.token_urlsafe(16))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> FakeCA:
        # A short poll interval keeps shutdown() from waiting half a second.
        serve = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _jws_payload(body: bytes) -> Any:
    encoded = json.loads(body)["payload"]
    if not encoded:
        return None  # POST-as-GET
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


@pytest.fixture
def fake_ca() -> Iterator[FakeCA]:
    with FakeCA() as ca:
        yield ca


def client_of(ca: FakeCA, **settings: Any) -> AcmeClient:
    options: dict[str, Any] = {"retry_pause": 0.01, "network_attempts": 3}
    options.update(settings)
    return AcmeClient(
        AcmeSettings(directory_url=ca.url("/directory"), **options), AccountKey.generate()
    )


def test_the_fake_ca_registers_an_account(fake_ca: FakeCA) -> None:
    assert client_of(fake_ca).register() == fake_ca.url("/account/1")


def test_rate_limit_carries_the_cas_retry_after(fake_ca: FakeCA) -> None:
    fake_ca.script(
        "POST /account",
        Reply.problem(429, "rateLimited", "too many new accounts", **{"Retry-After": "120"}),
    )
    with pytest.raises(AcmeRateLimited) as limited:
        client_of(fake_ca).register()
    assert limited.value.retry_after == 120
    assert limited.value.retryable
    assert limited.value.code == "rateLimited"
    assert "too many new accounts" in str(limited.value)
    assert "120 s" in str(limited.value)
    assert fake_ca.hits["POST /account"] == 1  # not retried inside the client


def test_rate_limit_retry_after_as_a_date(fake_ca: FakeCA) -> None:
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=10)
    fake_ca.script(
        "POST /account",
        Reply.problem(
            429, "rateLimited", "slow down", **{"Retry-After": email.utils.format_datetime(later)}
        ),
    )
    with pytest.raises(AcmeRateLimited) as limited:
        client_of(fake_ca).register()
    assert limited.value.retry_after is not None
    assert 590 <= limited.value.retry_after <= 600


def test_server_errors_are_retried_then_reported_unavailable(fake_ca: FakeCA) -> None:
    fake_ca.script("POST /account", Reply.problem(503, "serverInternal", "maintenance"))
    with pytest.raises(AcmeUnavailable) as unavailable:
        client_of(fake_ca, network_attempts=3).register()
    assert fake_ca.hits["POST /account"] == 3
    assert unavailable.value.retryable
    assert "maintenance" in str(unavailable.value)


def test_one_server_error_is_absorbed(fake_ca: FakeCA) -> None:
    fake_ca.script(
        "POST /account",
        Reply(502, "<html>bad gateway</html>"),
        Reply(201, {"status": "valid"}, {"Location": fake_ca.url("/account/7")}),
    )
    assert client_of(fake_ca).register() == fake_ca.url("/account/7")
    assert fake_ca.hits["POST /account"] == 2


def test_bad_nonces_are_retried_within_bounds(fake_ca: FakeCA) -> None:
    fake_ca.script(
        "POST /account",
        Reply.problem(400, "badNonce", "stale nonce"),
        Reply.problem(400, "badNonce", "stale nonce"),
        Reply(201, {"status": "valid"}, {"Location": fake_ca.url("/account/2")}),
    )
    assert client_of(fake_ca).register() == fake_ca.url("/account/2")

    fake_ca.script("POST /account", Reply.problem(400, "badNonce", "stale nonce"))
    fake_ca.hits.clear()
    with pytest.raises(AcmeUnavailable):
        client_of(fake_ca, bad_nonce_attempts=4).register()
    assert fake_ca.hits["POST /account"] == 4


def test_refusals_are_rejected_at_once_with_plain_messages(fake_ca: FakeCA) -> None:
    fake_ca.script(
        "POST /account", Reply.problem(400, "invalidContact", "contact domain is invalid")
    )
    with pytest.raises(AcmeRejected) as rejected:
        client_of(fake_ca, contact_email="ops@invalid.test").register()
    message = str(rejected.value)
    assert fake_ca.hits["POST /account"] == 1
    assert not rejected.value.retryable
    assert rejected.value.code == "invalidContact"
    assert "contact domain is invalid" in message
    assert "contact_email" in message  # what to fix
    for jws_part in ("protected", "signature", "payload", "nonce"):
        assert jws_part not in message


def test_directory_that_is_not_acme_is_reported(fake_ca: FakeCA) -> None:
    fake_ca.script("GET /directory", Reply(200, "<html>a web page</html>"))
    with pytest.raises(AcmeUnavailable, match="directory_url"):
        client_of(fake_ca).register()


def test_directory_failing_with_a_5xx_page_is_unavailable(fake_ca: FakeCA) -> None:
    fake_ca.script("GET /directory", Reply(500, "<html>oops</html>"))
    started = time.monotonic()
    with pytest.raises(AcmeUnavailable, match="HTTP 500"):
        client_of(fake_ca).register()
    assert fake_ca.hits["GET /directory"] == 3
    assert time.monotonic() - started < 2


def test_retry_after_header_forms() -> None:
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    assert retry_after_seconds("30") == 30
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = email.utils.format_datetime(now + datetime.timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(later, now=now) == 90
    earlier = email.utils.format_datetime(now - datetime.timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds(earlier, now=now) == 0


def test_settings_refuse_half_an_external_account_binding() -> None:
    with pytest.raises(ValueError, match="both"):
        AcmeSettings(eab_kid="kid-1")
    with pytest.raises(ValueError, match="base64url"):
        AcmeSettings(eab_kid="kid-1", eab_hmac_key="not base64!")


def certificate_with_key_identifier() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "links.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=89))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return leaf.public_bytes(serialization.Encoding.PEM).decode()


def offer_renewal_info(ca: FakeCA) -> None:
    base = ca.url("")
    ca.script("GET /directory", Reply(200, {
        "newNonce": f"{base}/nonce",
        "newAccount": f"{base}/account",
        "newOrder": f"{base}/order",
        "revokeCert": f"{base}/revoke",
        "renewalInfo": f"{base}/renewal-info",
    }))  # fmt: skip


def test_renewal_window_comes_from_the_cas_renewal_info(fake_ca: FakeCA) -> None:
    offer_renewal_info(fake_ca)
    cert_pem = certificate_with_key_identifier()
    fake_ca.script(
        f"GET /renewal-info/{ari_certificate_id(cert_pem)}",
        Reply(
            200,
            {
                "suggestedWindow": {"start": "2026-02-01T00:00:00Z", "end": "2026-02-03T00:00:00Z"},
                "explanationURL": "https://ca.test/why",
            },
            {"Retry-After": "21600"},
        ),
    )
    window = client_of(fake_ca).renewal_window(cert_pem)
    assert window is not None
    assert window.start == datetime.datetime(2026, 2, 1, tzinfo=datetime.UTC)
    assert window.end == datetime.datetime(2026, 2, 3, tzinfo=datetime.UTC)
    assert window.explanation_url == "https://ca.test/why"
    assert window.check_again_after == 21600


def test_renewal_window_is_none_without_ari(fake_ca: FakeCA) -> None:
    assert client_of(fake_ca).renewal_window(certificate_with_key_identifier()) is None


def test_renewal_order_names_the_certificate_it_replaces_only_when_the_ca_has_ari(
    fake_ca: FakeCA,
) -> None:
    order = {
        "status": "pending",
        "identifiers": [{"type": "dns", "value": "links.example.com"}],
        "authorizations": [fake_ca.url("/authz/1")],
        "finalize": fake_ca.url("/order/1/finalize"),
    }
    fake_ca.script("POST /order", Reply(201, order, {"Location": fake_ca.url("/order/1")}))
    replaced = ari_certificate_id(certificate_with_key_identifier())

    client_of(fake_ca).new_order("links.example.com", replaces=replaced)
    assert "replaces" not in fake_ca.payloads["POST /order"][-1]

    offer_renewal_info(fake_ca)
    info = client_of(fake_ca).new_order("links.example.com", replaces=replaced)
    assert fake_ca.payloads["POST /order"][-1]["replaces"] == replaced
    assert fake_ca.payloads["POST /order"][-1]["identifiers"] == order["identifiers"]
    assert info.url == fake_ca.url("/order/1")


def test_unicode_names_are_refused_before_any_request(fake_ca: FakeCA) -> None:
    with pytest.raises(ValueError, match="A-label"):
        client_of(fake_ca).new_order("bücher.example")
    assert sum(fake_ca.hits.values()) == 0


def test_polls_come_soon_then_less_often_up_to_the_poll_interval() -> None:
    settings = AcmeSettings()
    assert [settings.poll_pause(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    slow = AcmeSettings(poll_first_interval=0.25, poll_interval=2.0)
    assert [slow.poll_pause(n) for n in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.0]


def test_the_cas_retry_after_decides_the_pause_when_given() -> None:
    settings = AcmeSettings()
    assert settings.poll_pause(0, retry_after=3.0) == 3.0
    assert settings.poll_pause(9, retry_after=0.05) == 0.05
    assert settings.poll_pause(100_000) == 1.0


def test_settings_refuse_a_first_poll_outside_the_poll_interval() -> None:
    with pytest.raises(ValueError, match="poll_first_interval"):
        AcmeSettings(poll_first_interval=2.0, poll_interval=1.0)
    with pytest.raises(ValueError, match="poll_first_interval"):
        AcmeSettings(poll_first_interval=0)


def _recorded_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    # The pauses the client asks for, without waiting them out.
    pauses: list[float] = []
    monkeypatch.setattr(time, "sleep", pauses.append)
    return pauses


def test_finalize_polls_the_processing_order_by_the_schedule(
    fake_ca: FakeCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "links.shop.test"
    processing = {
        "status": "processing",
        "identifiers": [{"type": "dns", "value": name}],
        "authorizations": [],
        "finalize": fake_ca.url("/order/1/finalize"),
    }
    issued = {**processing, "status": "valid", "certificate": fake_ca.url("/cert/1")}
    fake_ca.script(
        "POST /order/1",
        Reply(200, processing),
        Reply(200, processing),
        Reply(200, processing, {"Retry-After": "3"}),
        Reply(200, processing),
        Reply(200, issued),
    )
    fake_ca.script("POST /cert/1", Reply(200, certificate_with_key_identifier()))
    order = OrderInfo(
        url=fake_ca.url("/order/1"),
        status=AcmeStatus.PROCESSING,
        identifiers=(name,),
        authorization_urls=(),
        finalize_url=fake_ca.url("/order/1/finalize"),
    )
    csr = make_csr(generate_private_key("ec256"), name)
    pauses = _recorded_sleeps(monkeypatch)

    chain = client_of(fake_ca).finalize(order, csr)

    assert "BEGIN CERTIFICATE" in chain
    # Soon, then twice as long; the CA's Retry-After as given; then the schedule goes on.
    assert pauses == [0.1, 0.2, 3.0, 0.8]


def test_validation_is_polled_by_the_schedule(
    fake_ca: FakeCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "links.shop.test"
    pending = {
        "status": "pending",
        "identifier": {"type": "dns", "value": name},
        "challenges": [],
    }
    fake_ca.script(
        "POST /authz/1",
        Reply(200, pending),
        Reply(200, pending),
        Reply(200, pending),
        Reply(200, {**pending, "status": "valid"}),
    )
    order = OrderInfo(
        url=fake_ca.url("/order/1"),
        status=AcmeStatus.PENDING,
        identifiers=(name,),
        authorization_urls=(fake_ca.url("/authz/1"),),
        finalize_url=fake_ca.url("/order/1/finalize"),
    )
    pauses = _recorded_sleeps(monkeypatch)

    client_of(fake_ca).wait_for_authorizations(order)

    assert pauses == [0.1, 0.2, 0.4]
