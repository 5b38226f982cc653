"""What the alert tests share: real receivers on loopback and a small installation.

`SmtpReceiver` is an aiosmtpd server; `WebhookReceiver` is a threaded HTTP server that can be
told to fail a number of times, or to never answer. Both only listen on 127.0.0.1.
"""

from __future__ import annotations

import email
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from linkcert.config import Settings
from linkcert.domains import create_account, set_tracking_domain
from linkcert.names import NamePolicy
from linkcert.notify import Notifier
from linkcert.states import CertState, DnsState
from linkcert.store import Certificate, Domain, Store
from linkcert.testbed.waiting import free_port

POLICY = NamePolicy(allow_test_domains=True)
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SECRET = "whsec-test-0123456789"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Message

    @property
    def body(self) -> str:
        payload = self.message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        text = payload.decode(self.message.get_content_charset() or "utf-8")
        return text.replace("\r\n", "\n")


class _MailHandler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.receiver.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.receiver.mails.append(
            ReceivedMail(
                sender=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                message=email.message_from_bytes(content),
            )
        )
        return "250 Message accepted"


class SmtpReceiver:
    """An SMTP server on 127.0.0.1 that keeps what it receives.

    With `login`, it asks for AUTH LOGIN/PLAIN with that (user, password) and refuses others.
    """

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.mails: list[ReceivedMail] = []
        self.refuse: set[str] = set()
        self.logins: list[str] = []
        self.port = free_port()
        options: dict[str, Any] = {}
        if login is not None:
            options.update(
                auth_required=True,
                auth_require_tls=False,
                authenticator=self._authenticator(login),
            )
        self.controller = Controller(
            _MailHandler(self), hostname="127.0.0.1", port=self.port, **options
        )

    def _authenticator(self, login: tuple[str, str]) -> Callable[..., AuthResult]:
        def check(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
        ) -> AuthResult:
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            user, password = data.login.decode(), data.password.decode()
            if (user, password) == login:
                self.logins.append(user)
                return AuthResult(success=True)
            return AuthResult(success=False, handled=False)

        return check

    def settings(self, **more: Any) -> Settings:
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "smtp_starttls": False,
            "smtp_from": "linkcert <alerts@platform.test>",
            "smtp_timeout": 5.0,
        }
        values.update(more)
        return Settings(**values)

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.controller.stop()


# --- webhooks -----------------------------------------------------------------------------


@dataclass
class ReceivedHook:
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class WebhookBehaviour:
    fail_first: int = 0  # answer 500 to this many requests first
    hang: bool = False  # never answer (until the receiver is closed)
    delay: float = 0.0  # pause before answering, to make concurrent senders overlap
    secret: str = SECRET
    requests: list[ReceivedHook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)


class _HookHandler(BaseHTTPRequestHandler):
    behaviour: WebhookBehaviour

    def do_POST(self) -> None:
        from linkcert.notify import SIGNATURE_HEADER, SignatureError, verify_signature

        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            verify_signature(self.behaviour.secret, self.headers.get(SIGNATURE_HEADER, ""), body)
            verified = True
        except SignatureError:
            verified = False
        behaviour = self.behaviour
        with behaviour.lock:
            behaviour.requests.append(ReceivedHook(dict(self.headers.items()), body, verified))
            failing = len(behaviour.requests) <= behaviour.fail_first
        if behaviour.hang:
            behaviour.release.wait(30)
            return
        if behaviour.delay:
            time.sleep(behaviour.delay)
        status = 500 if failing else (204 if verified else 401)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that checks each request's signature and records it."""

    def __init__(self, behaviour: WebhookBehaviour | None = None) -> None:
        self.behaviour = behaviour or WebhookBehaviour()
        handler = type("Handler", (_HookHandler,), {"behaviour": self.behaviour})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/linkcert"

    @property
    def requests(self) -> list[ReceivedHook]:
        with self.behaviour.lock:
            return list(self.behaviour.requests)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.behaviour.release.set()
        self.server.shutdown()
        self.server.server_close()


# --- an installation ----------------------------------------------------------------------


def add_customer(
    store: Store, name: str, domain: str, emails: list[str], *, brand: bool = False
) -> int:
    """An account with a link tracking domain; returns the domain's id."""
    account = create_account(store, name, emails)
    row = set_tracking_domain(store, account.id, domain, POLICY)
    if brand:
        with store.session() as session:
            found = session.get(Domain, row.id)
            assert found is not None
            found.kind = "brand"
    return row.id


def give_certificate(
    store: Store,
    domain_id: int,
    not_before: datetime,
    not_after: datetime,
    serial: str = "0a1b2c",
) -> int:
    """Store a certificate (made-up PEM) as the domain's current one; DNS ok, cert active."""
    with store.session() as session:
        domain = session.get(Domain, domain_id)
        assert domain is not None
        cert = Certificate(
            domain_id=domain_id,
            chain_pem="-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
            key_encrypted=None,
            serial=serial,
            issuer="Test CA R1",
            not_before=not_before,
            not_after=not_after,
            fingerprint_sha256="0" * 64,
            source="acme",
            created_at=not_before,
        )
        session.add(cert)
        session.flush()
        domain.current_certificate_id = cert.id
        domain.dns_state = DnsState.OK
        domain.cert_state = CertState.ACTIVE
        return cert.id


def notifier_for(settings: Settings, clock: Callable[[], datetime]) -> Notifier:
    return Notifier.from_settings(settings, clock)
