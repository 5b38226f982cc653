"""Obtaining a certificate for one domain, one persisted step at a time.

Each step is written to the store before the next one starts, so a worker killed at any point
resumes the same order from its URL instead of starting a new one (which would spend the CA's
rate limits): the certificate key and CSR are saved before the order is placed, the order URL
as soon as the CA gives it, the challenge answers before the CA is told to validate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, select

from linkcert.acme.certs import ChainError, ChainInfo, make_csr, verify_chain
from linkcert.acme.errors import (
    AcmeError,
    AcmeRateLimited,
    AcmeRejected,
    AcmeUnavailable,
    ChallengeFailed,
    OrderInvalid,
)
from linkcert.acme.orders import AcmeStatus, Http01Challenge, OrderInfo
from linkcert.domains import record_event
from linkcert.keys import MasterKeys, generate_private_key, private_key_from_pem, private_key_to_pem
from linkcert.keystore import cert_key_context
from linkcert.states import CertState, FailureClass
from linkcert.store import Certificate, Challenge, Domain, Order, Store, utcnow
from linkcert.worker.lifecycle import IssuanceFailure
from linkcert.worker.ratelimit import IssuanceBudget, RateLimiter

log = logging.getLogger("linkcert.worker.issuance")

OPEN_ORDER_STATES = ("new", "pending", "ready", "processing")


class OrderingClient(Protocol):
    """The part of the ACME client issuance needs (see `linkcert.acme.client.AcmeClient`)."""

    def new_order(
        self, domain: str, *, profile: str | None = None, replaces: str | None = None
    ) -> OrderInfo: ...
    def load_order(self, order_url: str) -> OrderInfo: ...
    def http01_challenges(self, order: OrderInfo) -> list[Http01Challenge]: ...
    def answer(self, challenge: Http01Challenge) -> None: ...
    def wait_for_authorizations(self, order: OrderInfo, timeout: float | None = None) -> None: ...
    def finalize(self, order: OrderInfo, csr_pem: bytes, timeout: float | None = None) -> str: ...


class AccountSource(Protocol):
    """Gives the ACME client and the id of its account row, registering it if need be."""

    def get(self) -> tuple[OrderingClient, int]: ...


@dataclass(frozen=True)
class _Work:
    """What one attempt needs from the store, read in one short transaction."""

    domain: str
    order_id: int
    order_url: str | None
    key_pem: bytes
    csr_pem: bytes
    renewing: bool


class Issuer:
    """Obtains certificates through one ACME account and stores them encrypted."""

    def __init__(
        self,
        store: Store,
        keys: MasterKeys,
        accounts: AccountSource,
        *,
        key_type: str = "ec256",
        profile: str | None = None,
        trusted_roots_pem: bytes | None = None,
        validation_timeout: float = 120.0,
        on_certificate: Callable[[str], None] | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.store = store
        # The CA's rate limits, counted here before each new order; without a limiter (or with
        # no limits configured) orders are placed uncounted.
        self.budget = IssuanceBudget(rate_limiter or RateLimiter(store, {}))
        self.keys = keys
        self.accounts = accounts
        self.key_type = key_type
        self.profile = profile
        self.trusted_roots_pem = trusted_roots_pem
        self.validation_timeout = validation_timeout
        self.on_certificate = on_certificate
        self._lock = threading.Lock()

    async def obtain(self, domain_id: int) -> None:
        """Run (or resume) an order for the domain to a stored, verified certificate."""
        try:
            await asyncio.to_thread(self._obtain, domain_id)
        except IssuanceFailure:
            raise
        except ChallengeFailed as exc:
            await asyncio.to_thread(self._close_order, domain_id, "invalid", exc.message)
            raise IssuanceFailure(FailureClass.CHALLENGE_FAILED, _explain(exc)) from None
        except OrderInvalid as exc:
            await asyncio.to_thread(self._close_order, domain_id, "invalid", exc.message)
            raise IssuanceFailure(FailureClass.CA_REJECTED, _explain(exc)) from None
        except AcmeRateLimited as exc:
            raise IssuanceFailure(
                FailureClass.RATE_LIMITED, _explain(exc), exc.retry_after
            ) from None
        except AcmeUnavailable as exc:
            raise IssuanceFailure(
                FailureClass.CA_UNAVAILABLE, _explain(exc), exc.retry_after
            ) from None
        except AcmeRejected as exc:
            await asyncio.to_thread(self._close_order, domain_id, "invalid", exc.message)
            raise IssuanceFailure(FailureClass.CA_REJECTED, _explain(exc)) from None
        except AcmeError as exc:
            raise IssuanceFailure(FailureClass.CA_UNAVAILABLE, _explain(exc)) from None

    # --- the steps, each in a thread ---------------------------------------------------------

    def _obtain(self, domain_id: int) -> None:
        client, account_id = self.accounts.get()
        work = self._open_order(domain_id, account_id)
        if work.order_url is None:
            # Only a new order is counted: a resumed one was counted when it was placed. An ARI
            # renewal that sends `replaces` is not counted by the CA: it passes exempt=True.
            charge = self.budget.before_new_order(domain_id, account_id, exempt=False)
            try:
                info = client.new_order(work.domain, profile=self.profile)
            except AcmeError as exc:
                self.budget.order_not_placed(charge, exc)
                raise
            self._save_order(work.order_id, info)
        else:
            charge = self.budget.resumed(account_id, work.domain)
            info = client.load_order(work.order_url)
            self._save_order(work.order_id, info)
        try:
            self._complete(client, domain_id, work, info)
        except ChallengeFailed:
            self.budget.validation_failed(charge)
            raise
        except (OrderInvalid, AcmeRejected):
            self.budget.order_failed(charge)
            raise

    def _complete(
        self, client: OrderingClient, domain_id: int, work: _Work, info: OrderInfo
    ) -> None:
        """Validate, finalize and store the certificate of a placed order."""
        if info.status is AcmeStatus.INVALID:
            raise OrderInvalid(info.error or "the CA marked the order invalid")
        if info.status is AcmeStatus.PENDING:
            challenges = client.http01_challenges(info)
            self._publish(domain_id, work.order_id, challenges)
            for challenge in challenges:
                if challenge.needs_answer:
                    client.answer(challenge)
            client.wait_for_authorizations(info, self.validation_timeout)
        self._set_cert_state(domain_id, work.renewing, CertState.PENDING_ISSUANCE)
        chain_pem = client.finalize(info, work.csr_pem, self.validation_timeout)
        key = private_key_from_pem(work.key_pem)
        try:
            facts = verify_chain(chain_pem, key, work.domain, self.trusted_roots_pem)
        except ChainError as exc:
            self._close_order(domain_id, "invalid", str(exc))
            raise IssuanceFailure(
                FailureClass.CA_REJECTED, f"The CA returned an unusable certificate: {exc}"
            ) from None
        self._store_certificate(domain_id, work, chain_pem, facts)
        if self.on_certificate is not None:
            self.on_certificate(work.domain)

    def _open_order(self, domain_id: int, account_id: int) -> _Work:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                raise IssuanceFailure(FailureClass.INTERNAL, "the domain was removed")
            renewing = domain.current_certificate_id is not None
            order = session.scalar(
                select(Order)
                .where(
                    Order.domain_id == domain_id,
                    Order.acme_account_id == account_id,
                    Order.status.in_(OPEN_ORDER_STATES),
                )
                .order_by(Order.id.desc())
                .limit(1)
            )
            context = cert_key_context(domain.name)
            if order is None:
                # A new key for every certificate, saved (encrypted) with its CSR before the
                # order exists, so that a resumed order finalizes with the same key.
                key = generate_private_key(self.key_type)
                key_pem = private_key_to_pem(key)
                csr_pem = make_csr(key, domain.name)
                order = Order(
                    domain_id=domain_id,
                    acme_account_id=account_id,
                    status="new",
                    info={},
                    key_encrypted=self.keys.encrypt(key_pem, context),
                    csr_pem=csr_pem.decode("ascii"),
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
                session.add(order)
                session.flush()
                state = CertState.RENEWING if renewing else CertState.PENDING_VALIDATION
                domain.cert_state = state
                record_event(
                    session,
                    domain,
                    "order_started",
                    "Renewing the certificate." if renewing else "Requesting a certificate.",
                )
            else:
                key_pem = self.keys.decrypt(order.key_encrypted, context)
                csr_pem = order.csr_pem.encode("ascii")
                if order.url is not None:
                    record_event(
                        session, domain, "order_resumed", "Resuming the order.", order_url=order.url
                    )
            return _Work(domain.name, order.id, order.url, key_pem, csr_pem, renewing)

    def _save_order(self, order_id: int, info: OrderInfo) -> None:
        with self.store.session() as session:
            order = session.get(Order, order_id)
            if order is not None:
                order.url = info.url
                order.status = info.status.value
                order.info = info.to_json()
                order.updated_at = utcnow()

    def _publish(self, domain_id: int, order_id: int, challenges: list[Http01Challenge]) -> None:
        # Written before the CA is told to look, so that any edge process can answer.
        with self.store.session() as session:
            for challenge in challenges:
                if session.get(Challenge, challenge.token) is None:
                    session.add(
                        Challenge(
                            token=challenge.token,
                            key_authorization=challenge.key_authorization,
                            domain_id=domain_id,
                            order_id=order_id,
                            created_at=utcnow(),
                        )
                    )

    def _set_cert_state(self, domain_id: int, renewing: bool, state: CertState) -> None:
        if renewing:
            return  # the current certificate keeps serving; the state stays "renewing"
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is not None and domain.cert_state != state:
                domain.cert_state = state
                record_event(session, domain, "validated", "The domain was validated.")

    def _store_certificate(
        self, domain_id: int, work: _Work, chain_pem: str, facts: ChainInfo
    ) -> None:
        now = utcnow()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            order = session.get(Order, work.order_id)
            if domain is None or order is None:
                return
            cert = Certificate(
                domain_id=domain_id,
                chain_pem=chain_pem,
                key_encrypted=order.key_encrypted,
                serial=facts.serial_hex,
                issuer=facts.issuer_cn,
                not_before=facts.not_before,
                not_after=facts.not_after,
                fingerprint_sha256=facts.fingerprint_sha256,
                order_id=order.id,
                source="acme",
                created_at=now,
            )
            session.add(cert)
            session.flush()
            domain.current_certificate_id = cert.id
            domain.cert_state = CertState.ACTIVE
            domain.problems = []
            order.status = "valid"
            order.finished_at = now
            session.execute(delete(Challenge).where(Challenge.order_id == order.id))
            record_event(
                session,
                domain,
                "renewed" if work.renewing else "secured",
                f"Certificate issued by {facts.issuer_cn}, valid until "
                f"{facts.not_after:%Y-%m-%d %H:%M} UTC.",
                serial=facts.serial_hex,
            )

    def _close_order(self, domain_id: int, status: str, message: str) -> None:
        with self.store.session() as session:
            order = session.scalar(
                select(Order)
                .where(Order.domain_id == domain_id, Order.status.in_(OPEN_ORDER_STATES))
                .order_by(Order.id.desc())
                .limit(1)
            )
            if order is not None:
                order.status = status
                order.error = message[:2000]
                order.finished_at = utcnow()
                session.execute(delete(Challenge).where(Challenge.order_id == order.id))


def _explain(exc: AcmeError) -> str:
    if exc.detail and exc.detail not in exc.message:
        return f"{exc.message}: {exc.detail}"
    return exc.message
