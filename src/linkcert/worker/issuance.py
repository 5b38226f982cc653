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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from linkcert.acme.certs import ChainError, ChainInfo, ari_certificate_id, make_csr, verify_chain
from linkcert.acme.errors import (
    AcmeError,
    AcmeRateLimited,
    AcmeRejected,
    AcmeUnavailable,
    ChallengeFailed,
    OrderInvalid,
)
from linkcert.acme.orders import (
    AcmeStatus,
    Dns01Challenge,
    Http01Challenge,
    OrderInfo,
    RenewalWindow,
)
from linkcert.acme.revocation import RevocationReason
from linkcert.certificates import install_certificate
from linkcert.counters import count_ca_failover, count_ca_order, count_order_started
from linkcert.dcv import DcvUpdateError, ZoneUpdater
from linkcert.domains import CA_CHOICE, record_event
from linkcert.keys import MasterKeys, generate_private_key, private_key_from_pem, private_key_to_pem
from linkcert.keystore import cert_key_context
from linkcert.notify import NotificationKind, Notifier
from linkcert.ownership import dcv_name
from linkcert.ownership_store import dcv_label_of
from linkcert.renewal import ari_recheck_delay, plan_renewal
from linkcert.states import CertState, FailureClass
from linkcert.store import AcmeAccount, Certificate, Challenge, Domain, Order, Store, utcnow
from linkcert.store.signals import CERTIFICATES, CHALLENGES, announce
from linkcert.worker import leases
from linkcert.worker.cachoice import PERMITTED_CAS, CaHealth, Candidate, plan
from linkcert.worker.lifecycle import CHALLENGE_METHOD, IssuanceFailure
from linkcert.worker.ratelimit import IssuanceBudget, RateLimiter

log = logging.getLogger("linkcert.worker.issuance")

METHOD_DNS01 = "dns-01"
# Keys of `Order.info` kept when the CA's description of the order is stored again: the CA's
# choice, the challenge the order answers, and the DNS-01 records still to remove.
CHALLENGE = "challenge"
DCV_RECORDS = "dcv_records"
_KEPT_INFO = (CA_CHOICE, CHALLENGE, DCV_RECORDS)

# An order is open until its certificate is stored or it is given up: the CA's "valid" alone
# does not close it, since a worker may die between the CA issuing and the store recording it;
# the next pass then resumes the order and downloads the certificate instead of ordering again.


class OrderingClient(Protocol):
    """The part of the ACME client issuance needs (see `linkcert.acme.client.AcmeClient`)."""

    def new_order(
        self, domain: str, *, profile: str | None = None, replaces: str | None = None
    ) -> OrderInfo: ...
    def load_order(self, order_url: str) -> OrderInfo: ...
    def http01_challenges(self, order: OrderInfo) -> list[Http01Challenge]: ...
    def dns01_challenges(self, order: OrderInfo) -> list[Dns01Challenge]: ...
    def answer(self, challenge: Http01Challenge | Dns01Challenge) -> None: ...
    def wait_for_authorizations(self, order: OrderInfo, timeout: float | None = None) -> None: ...
    def finalize(self, order: OrderInfo, csr_pem: bytes, timeout: float | None = None) -> str: ...
    def offers_renewal_info(self) -> bool: ...
    def renewal_window(self, cert_pem: str | bytes) -> RenewalWindow | None: ...
    def revoke(self, cert_pem: str | bytes, reason: RevocationReason = ...) -> None: ...


class AccountSource(Protocol):
    """Gives the ACME client and the id of its account row, registering it if need be."""

    def get(self) -> tuple[OrderingClient, int]: ...


@dataclass(frozen=True)
class IssuingCa:
    """One CA the issuer may order from, in the operator's order of preference."""

    name: str
    accounts: AccountSource
    directory_url: str = ""
    caa_domains: tuple[str, ...] = ()
    profile: str | None = None
    rate_limiter: RateLimiter | None = None


@dataclass(frozen=True)
class _Work:
    """What one attempt needs from the store, read in one short transaction."""

    domain: str
    order_id: int
    order_url: str | None
    key_pem: bytes
    csr_pem: bytes
    renewing: bool
    current_chain: str | None
    same_ca: bool = True  # the order goes to the CA of the current certificate
    method: str = "http-01"  # the challenge this order answers ("http-01" or "dns-01")
    dcv_label: str | None = None  # for dns-01: the owner's label in the delegation zone


class Issuer:
    """Obtains certificates through the CAs' ACME accounts and stores them encrypted.

    `accounts` is one account (one CA), or the CAs to choose from in order of preference
    (see `linkcert.worker.cachoice`).
    """

    def __init__(
        self,
        store: Store,
        keys: MasterKeys,
        accounts: AccountSource | Sequence[IssuingCa],
        *,
        key_type: str = "ec256",
        profile: str | None = None,
        trusted_roots_pem: bytes | None = None,
        validation_timeout: float = 120.0,
        min_margin: timedelta = timedelta(hours=48),
        notifier: Notifier | None = None,
        on_certificate: Callable[[str], None] | None = None,
        on_challenges: Callable[[str], None] | None = None,
        rate_limiter: RateLimiter | None = None,
        health: CaHealth | None = None,
        dcv: ZoneUpdater | None = None,
    ) -> None:
        self.store = store
        # Where DNS-01 answers are written (the platform's delegation zone); None: HTTP-01 only.
        self.dcv = dcv
        if isinstance(accounts, Sequence):
            self.cas = list(accounts)
        else:
            self.cas = [IssuingCa("the CA", accounts, profile=profile, rate_limiter=rate_limiter)]
        if not self.cas:
            raise ValueError("the issuer needs at least one CA")
        # Each CA's rate limits, counted here before each new order; without a limiter (or
        # with no limits configured) orders are placed uncounted.
        self.budgets = {
            ca.name: IssuanceBudget(ca.rate_limiter or RateLimiter(store, {})) for ca in self.cas
        }
        self.health = health or CaHealth()
        self.keys = keys
        self.key_type = key_type
        self.trusted_roots_pem = trusted_roots_pem
        self.validation_timeout = validation_timeout
        self.min_margin = min_margin
        self.notifier = notifier
        self.on_certificate = on_certificate
        # Called (in a worker thread) once a domain's open order or its challenges are stored,
        # before the CA is told to look: an edge in this process reads them at once.
        self.on_challenges = on_challenges
        self._lock = threading.Lock()

    async def obtain(self, domain_id: int) -> None:
        """Run (or resume) an order for the domain to a stored, verified certificate."""
        try:
            await asyncio.to_thread(self._obtain, domain_id)
        except IssuanceFailure:
            raise
        except DcvUpdateError as exc:
            # The order is given up (its record removed or never written): the next attempt
            # places a new one, by whichever method DNS then allows.
            await asyncio.to_thread(self._close_order, domain_id, "abandoned", str(exc))
            raise IssuanceFailure(FailureClass.DCV_UPDATE_FAILED, str(exc)) from None
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

    async def refresh_renewal(self, domain_id: int) -> None:
        """Ask the CA's renewal information again; move the renewal earlier if it says so."""
        await self._run(domain_id, self._refresh_renewal)

    async def delete(self, domain_id: int) -> None:
        """Revoke the domain's certificates (cessationOfOperation) and erase every key."""
        await self._run(domain_id, self._delete)

    async def _run(self, domain_id: int, step: Callable[[int], None]) -> None:
        try:
            await asyncio.to_thread(step, domain_id)
        except AcmeRateLimited as exc:
            raise IssuanceFailure(
                FailureClass.RATE_LIMITED, _explain(exc), exc.retry_after
            ) from None
        except AcmeRejected as exc:
            raise IssuanceFailure(FailureClass.CA_REJECTED, _explain(exc)) from None
        except AcmeError as exc:
            raise IssuanceFailure(
                FailureClass.CA_UNAVAILABLE, _explain(exc), exc.retry_after
            ) from None

    def _refresh_renewal(self, domain_id: int) -> None:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            cert = domain.current_certificate if domain is not None else None
            if cert is None:
                return
            chain, cert_id = cert.chain_pem, cert.id
            ca = self._ca_of_order(session, cert.order_id) or self.cas[0]
        client, _ = ca.accounts.get()
        window = client.renewal_window(chain)
        with self.store.session() as session:
            cert = session.get(Certificate, cert_id)
            if cert is None:
                return
            if window is None:
                cert.ari_next_check_at = None  # the CA has no ARI: the lifetime rule applies
                return
            inside = cert.renew_at is not None and window.start <= cert.renew_at <= window.end
            if not inside:
                # The window moved (e.g. the CA plans a mass revocation): pick a new time in it.
                cert.renew_at, _ = self._plan(cert.not_before, cert.not_after, window)
                domain = session.get(Domain, domain_id)
                if domain is not None:
                    record_event(
                        session,
                        domain,
                        "renewal_rescheduled",
                        f"The CA suggests renewing between {window.start:%Y-%m-%d %H:%M} and "
                        f"{window.end:%Y-%m-%d %H:%M} UTC.",
                        explanation_url=window.explanation_url,
                    )
            cert.ari_next_check_at = utcnow() + ari_recheck_delay(window.check_again_after)

    def _delete(self, domain_id: int) -> None:
        with self.store.session() as session:
            rows = session.scalars(
                select(Certificate).where(
                    Certificate.domain_id == domain_id,
                    Certificate.revoked_at.is_(None),
                    Certificate.source == "acme",
                )
            ).all()
            live = [
                (c.id, c.chain_pem, self._ca_of_order(session, c.order_id))
                for c in rows
                if c.not_after > utcnow()
            ]
        for cert_id, chain, ca in live:
            if ca is None:
                # Its CA is no longer configured: nothing to revoke it with; the key goes.
                log.warning("certificate %s: its CA is no longer configured; not revoked", cert_id)
                continue
            # Revoked at the CA that issued it, with the account that ordered it.
            client, _ = ca.accounts.get()
            client.revoke(chain, RevocationReason.CESSATION_OF_OPERATION)
            with self.store.session() as session:
                cert = session.get(Certificate, cert_id)
                if cert is not None:
                    cert.revoked_at = utcnow()
        now = utcnow()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                return
            for cert in session.scalars(
                select(Certificate).where(Certificate.domain_id == domain_id)
            ):
                cert.key_encrypted = None
            for order in session.scalars(select(Order).where(Order.domain_id == domain_id)):
                order.key_encrypted = None
                if order.finished_at is None:
                    order.status = "abandoned"
                    order.finished_at = now
            session.execute(delete(Challenge).where(Challenge.domain_id == domain_id))
            domain.current_certificate_id = None
            announce(session, CERTIFICATES, domain.name)
            domain.cert_state = CertState.REVOKED if live else CertState.NONE
            domain.wanted = False
            domain.account_id = None
            domain.proof = None
            domain.delete_requested = False
            domain.deleted_at = now
            domain.next_attempt_at = None
            if live and self.notifier is not None:
                self.notifier.emit(
                    session,
                    NotificationKind.REVOKED,
                    domain,
                    message=f"The certificate of {domain.unicode_name} was revoked on request.",
                    details={"reason": "cessationOfOperation"},
                )
            record_event(
                session,
                domain,
                "deleted",
                "Deleted: the certificate was revoked and its private key erased."
                if live
                else "Deleted: private keys erased.",
            )
            name = domain.name
        if self.on_certificate is not None:
            self.on_certificate(name)  # so an edge in this process stops serving it at once

    # --- the steps, each in a thread ---------------------------------------------------------

    def _obtain(self, domain_id: int) -> None:
        """Order from the best CA; when it is down or limiting, from the next one."""
        self._remove_leftover_records(domain_id)
        candidates, domain = self._candidates(domain_id)
        if not candidates:
            names = ", ".join(ca.name for ca in self.cas)
            raise IssuanceFailure(
                FailureClass.CAA_FORBIDS,
                f"The CAA records of {domain} allow none of the CAs linkcert uses ({names}).",
            )
        last: Exception | None = None
        for position, candidate in enumerate(candidates):
            ca = self._ca(candidate.name)
            more = position + 1 < len(candidates)
            try:
                self._obtain_at(ca, candidate.reason, domain_id)
            except AcmeUnavailable as exc:
                self.health.failed(ca.name)
                if not more:
                    raise
                last = exc
                self._failing_over(domain_id, ca.name, candidates[position + 1], exc)
                candidates[position + 1] = Candidate(
                    candidates[position + 1].name, f"{ca.name} was unavailable"
                )
            except AcmeRateLimited as exc:
                self.health.limit(ca.name, domain, exc.retry_after or 3600.0)
                if not more:
                    raise
                last = exc
                self._failing_over(domain_id, ca.name, candidates[position + 1], exc)
                candidates[position + 1] = Candidate(
                    candidates[position + 1].name,
                    f"{ca.name} asked to wait before another order for {domain}",
                )
            except IssuanceFailure as failure:
                # Our own count of this CA's rate limits leaves no room for the domain now.
                if failure.failure is not FailureClass.RATE_LIMITED or not more:
                    raise
                self.health.limit(ca.name, domain, failure.retry_after or 60.0)
                last = failure
                candidates[position + 1] = Candidate(
                    candidates[position + 1].name,
                    f"{ca.name}'s rate limits leave no room for {domain} now",
                )
            else:
                self.health.succeeded(ca.name)
                return
        assert last is not None
        raise last

    def _candidates(self, domain_id: int) -> tuple[list[Candidate], str]:
        """The CAs to try for the domain, best first, with why each is tried."""
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                raise IssuanceFailure(FailureClass.INTERNAL, "the domain was removed")
            name = domain.name
            open_order = session.scalar(
                select(Order)
                .where(Order.domain_id == domain_id, Order.finished_at.is_(None))
                .order_by(Order.id.desc())
                .limit(1)
            )
            current = domain.current_certificate
            sticky: IssuingCa | None = None
            sticky_reason = ""
            if open_order is not None and open_order.url is not None:
                sticky = self._ca_of_order(session, open_order.id)
                if sticky is not None:
                    choice = (open_order.info or {}).get(CA_CHOICE) or {}
                    sticky_reason = choice.get("reason") or ""
            if sticky is None and current is not None:
                sticky = self._ca_of_order(session, current.order_id)
                if sticky is not None and len(self.cas) > 1:
                    sticky_reason = f"{sticky.name} issued the current certificate"
        permitted = PERMITTED_CAS.get()
        if len(self.cas) == 1:
            permitted = None  # one CA: the DNS check alone decides
        found = plan(
            [ca.name for ca in self.cas],
            domain=name,
            permitted=permitted,
            health=self.health,
            sticky=sticky.name if sticky is not None else None,
            sticky_reason=sticky_reason,
        )
        return found, name

    def _failing_over(
        self, domain_id: int, failed: str, successor: Candidate, error: AcmeError
    ) -> None:
        count_ca_failover(failed, successor.name)
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is not None:
                record_event(
                    session,
                    domain,
                    "ca_failover",
                    f"{failed} could not take the order ({_explain(error)}); trying "
                    f"{successor.name}.",
                    ca=successor.name,
                    previous_ca=failed,
                )

    def _ca(self, name: str) -> IssuingCa:
        return next(ca for ca in self.cas if ca.name == name)

    def _ca_of_order(self, session: Session, order_id: int | None) -> IssuingCa | None:
        """The configured CA an order went to (by its account's directory), or None."""
        if order_id is None:
            return None
        if len(self.cas) == 1 and not self.cas[0].directory_url:
            return self.cas[0]
        directory = session.scalar(
            select(AcmeAccount.directory_url)
            .join(Order, Order.acme_account_id == AcmeAccount.id)
            .where(Order.id == order_id)
        )
        return next((ca for ca in self.cas if ca.directory_url == directory), None)

    def _obtain_at(self, ca: IssuingCa, reason: str, domain_id: int) -> None:
        client, account_id = ca.accounts.get()
        budget = self.budgets[ca.name]
        work = self._open_order(domain_id, account_id, ca.name, reason)
        if self.on_challenges is not None:
            self.on_challenges(work.domain)
        if work.order_url is None:
            leases.check_held(self.store, domain_id)
            # Only a new order is counted: a resumed one was counted when it was placed. An ARI
            # renewal that sends `replaces` is exempt from the CA's limits, so from ours too.
            replaces = self._replaces(client, work) if work.same_ca else None
            charge = budget.before_new_order(domain_id, account_id, exempt=replaces is not None)
            try:
                info = client.new_order(work.domain, profile=ca.profile, replaces=replaces)
            except AcmeError as exc:
                budget.order_not_placed(charge, exc)
                raise
            count_ca_order(ca.name)
            self._save_order(work.order_id, info)
        else:
            charge = budget.resumed(account_id, work.domain)
            info = client.load_order(work.order_url)
            self._save_order(work.order_id, info)
        try:
            self._complete(client, domain_id, work, info)
        except ChallengeFailed:
            budget.validation_failed(charge)
            raise
        except (OrderInvalid, AcmeRejected):
            budget.order_failed(charge)
            raise

    def _complete(
        self, client: OrderingClient, domain_id: int, work: _Work, info: OrderInfo
    ) -> None:
        """Validate, finalize and store the certificate of a placed order."""
        if info.status is AcmeStatus.INVALID:
            raise OrderInvalid(info.error or "the CA marked the order invalid")
        if info.status is AcmeStatus.PENDING and work.method == METHOD_DNS01:
            self._validate_dns01(client, work, info)
        elif info.status is AcmeStatus.PENDING:
            challenges = client.http01_challenges(info)
            self._publish(domain_id, work.order_id, challenges)
            if self.on_challenges is not None:
                self.on_challenges(work.domain)
            for challenge in challenges:
                if challenge.needs_answer:
                    client.answer(challenge)
            client.wait_for_authorizations(info, self.validation_timeout)
        self._set_cert_state(domain_id, work.renewing, CertState.PENDING_ISSUANCE)
        leases.check_held(self.store, domain_id)
        chain_pem = client.finalize(info, work.csr_pem, self.validation_timeout)
        key = private_key_from_pem(work.key_pem)
        try:
            facts = verify_chain(chain_pem, key, work.domain, self.trusted_roots_pem)
        except ChainError as exc:
            self._close_order(domain_id, "invalid", str(exc))
            raise IssuanceFailure(
                FailureClass.CA_REJECTED, f"The CA returned an unusable certificate: {exc}"
            ) from None
        window = self._ari_window(client, chain_pem)
        self._store_certificate(domain_id, work, chain_pem, facts, window)
        if self.on_certificate is not None:
            self.on_certificate(work.domain)

    def _validate_dns01(self, client: OrderingClient, work: _Work, info: OrderInfo) -> None:
        """Answer by DNS-01 through the owner's delegation: write the TXT record in the
        delegation zone, wait until its authoritative servers answer it, tell the CA, wait for
        its decision, and remove the record whatever the outcome."""
        if self.dcv is None or work.dcv_label is None:
            raise DcvUpdateError(
                "The order is to be validated by DNS-01, but no delegation zone (dcv_zone) is "
                "configured any more."
            )
        label = work.dcv_label
        pending = [c for c in client.dns01_challenges(info) if c.needs_answer]
        try:
            for challenge in pending:
                # Remembered before it is written, so that a crash leaves nothing behind for
                # good: the next attempt removes what an earlier one could not.
                started = time.monotonic()
                self._remember_record(work.order_id, label, challenge.validation)
                remembered = time.monotonic()
                self.dcv.add_txt(label, challenge.validation)
                written = time.monotonic()
                self.dcv.wait_published(label, challenge.validation)
                log.debug(
                    "DNS-01 for %s: remembered in %.3f s, written in %.3f s, answered by the "
                    "zone's servers after %.3f s",
                    work.domain,
                    remembered - started,
                    written - remembered,
                    time.monotonic() - written,
                )
            for challenge in pending:
                client.answer(challenge)
            client.wait_for_authorizations(info, self.validation_timeout)
        finally:
            self._remove_records(work.order_id)

    def _remember_record(self, order_id: int, label: str, value: str) -> None:
        with self.store.session() as session:
            order = session.get(Order, order_id)
            if order is not None:
                info = dict(order.info or {})
                records = [r for r in info.get(DCV_RECORDS, []) if r != [label, value]]
                info[DCV_RECORDS] = [*records, [label, value]]
                order.info = info

    def _remove_records(self, order_id: int) -> None:
        """Remove the order's TXT records from the delegation zone; those that cannot be
        removed now stay listed on the order for the next attempt."""
        with self.store.session() as session:
            order = session.get(Order, order_id)
            records = list((order.info or {}).get(DCV_RECORDS, [])) if order is not None else []
        if not records or self.dcv is None:
            return
        left = []
        for label, value in records:
            try:
                self.dcv.remove_txt(label, value)
            except DcvUpdateError as exc:
                log.warning("a DNS-01 record could not be removed yet: %s", exc)
                left.append([label, value])
        with self.store.session() as session:
            order = session.get(Order, order_id)
            if order is not None:
                info = dict(order.info or {})
                info[DCV_RECORDS] = left
                order.info = info

    def _remove_leftover_records(self, domain_id: int) -> None:
        if self.dcv is None:
            return
        with self.store.session() as session:
            ids = [
                order.id
                for order in session.scalars(select(Order).where(Order.domain_id == domain_id))
                if (order.info or {}).get(DCV_RECORDS)
            ]
        for order_id in ids:
            self._remove_records(order_id)

    def _open_order(self, domain_id: int, account_id: int, ca_name: str, reason: str) -> _Work:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                raise IssuanceFailure(FailureClass.INTERNAL, "the domain was removed")
            current = domain.current_certificate
            renewing = current is not None
            same_ca = current is not None and self._ca_of_order(session, current.order_id) is (
                self._ca(ca_name)
            )
            # An order still open at another CA is given up: this one replaces it.
            for stale in session.scalars(
                select(Order).where(
                    Order.domain_id == domain_id,
                    Order.acme_account_id != account_id,
                    Order.finished_at.is_(None),
                )
            ):
                stale.status = "abandoned"
                stale.error = f"moved to {ca_name}: {reason}"[:2000]
                stale.finished_at = utcnow()
                session.execute(delete(Challenge).where(Challenge.order_id == stale.id))
            order = session.scalar(
                select(Order)
                .where(
                    Order.domain_id == domain_id,
                    Order.acme_account_id == account_id,
                    Order.finished_at.is_(None),
                )
                .order_by(Order.id.desc())
                .limit(1)
            )
            context = cert_key_context(domain.name)
            method = CHALLENGE_METHOD.get()
            if method == METHOD_DNS01 and self.dcv is None:
                method = "http-01"
            if order is not None:
                method = str((order.info or {}).get(CHALLENGE, "http-01"))
            dcv_label = dcv_label_of(domain.account, domain) if method == METHOD_DNS01 else None
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
                    info={
                        CA_CHOICE: {"ca": ca_name, "reason": reason or None},
                        CHALLENGE: method,
                    },
                    key_encrypted=self.keys.encrypt(key_pem, context),
                    csr_pem=csr_pem.decode("ascii"),
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
                session.add(order)
                session.flush()
                # Every edge learns that this name has an open order before the CA can come.
                announce(session, CHALLENGES, domain.name)
                count_order_started(renewal=renewing)
                state = CertState.RENEWING if renewing else CertState.PENDING_VALIDATION
                domain.cert_state = state
                record_event(
                    session,
                    domain,
                    "order_started",
                    _order_message(renewing, ca_name, reason, several=len(self.cas) > 1)
                    + _method_words(method, domain.name, self.dcv, dcv_label),
                    ca=ca_name,
                    ca_reason=reason,
                    method=method,
                )
            else:
                if order.key_encrypted is None:
                    raise IssuanceFailure(FailureClass.INTERNAL, "the order's key was erased")
                key_pem = self.keys.decrypt(order.key_encrypted, context)
                csr_pem = order.csr_pem.encode("ascii")
                if order.url is not None:
                    record_event(
                        session, domain, "order_resumed", "Resuming the order.", order_url=order.url
                    )
            chain = current.chain_pem if current is not None else None
            return _Work(
                domain.name,
                order.id,
                order.url,
                key_pem,
                csr_pem,
                renewing,
                chain,
                same_ca,
                method,
                dcv_label,
            )

    def _save_order(self, order_id: int, info: OrderInfo) -> None:
        with self.store.session() as session:
            order = session.get(Order, order_id)
            if order is not None:
                order.url = info.url
                order.status = info.status.value
                kept = {k: v for k, v in (order.info or {}).items() if k in _KEPT_INFO}
                order.info = {**info.to_json(), **kept}
                order.updated_at = utcnow()

    def _publish(self, domain_id: int, order_id: int, challenges: list[Http01Challenge]) -> None:
        # Written before the CA is told to look, so that any edge process can answer.
        with self.store.session() as session:
            for name in sorted({challenge.domain for challenge in challenges}):
                announce(session, CHALLENGES, name)
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

    @staticmethod
    def _replaces(client: OrderingClient, work: _Work) -> str | None:
        # A renewal names the certificate it replaces when the CA has ARI: such orders are
        # exempt from the CA's rate limits.
        if work.current_chain is None or not client.offers_renewal_info():
            return None
        return ari_certificate_id(work.current_chain)

    @staticmethod
    def _ari_window(client: OrderingClient, chain_pem: str) -> RenewalWindow | None:
        try:
            return client.renewal_window(chain_pem)
        except AcmeError as exc:
            log.warning("no renewal information for a new certificate: %s", exc)
            return None

    def _plan(
        self, facts_before: datetime, facts_after: datetime, window: RenewalWindow | None
    ) -> tuple[datetime, datetime | None]:
        """The renewal time and, with ARI, when to ask the CA again."""
        renew_at = plan_renewal(
            facts_before,
            facts_after,
            (window.start, window.end) if window is not None else None,
            self.min_margin,
        )
        if window is None:
            return renew_at, None
        return renew_at, utcnow() + ari_recheck_delay(window.check_again_after)

    def _store_certificate(
        self,
        domain_id: int,
        work: _Work,
        chain_pem: str,
        facts: ChainInfo,
        window: RenewalWindow | None,
    ) -> None:
        now = utcnow()
        with self.store.session() as session:
            # Locked, so that two workers finishing the same order (one whose lease ran out
            # while it waited on the CA) store its certificate once.
            order = session.get(Order, work.order_id, with_for_update=True)
            domain = session.get(Domain, domain_id)
            if domain is None or order is None or order.finished_at is not None:
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
            cert.renew_at, cert.ari_next_check_at = self._plan(
                facts.not_before, facts.not_after, window
            )
            order.status = "valid"
            order.finished_at = now
            session.execute(delete(Challenge).where(Challenge.order_id == order.id))
            install_certificate(
                session,
                domain,
                cert,
                notifier=self.notifier,
                event="renewed" if work.renewing else "secured",
                message=f"Certificate issued by {facts.issuer_cn}"
                f"{_through(order) if len(self.cas) > 1 else ''}, valid "
                f"until {facts.not_after:%Y-%m-%d %H:%M} UTC.",
                renewing=work.renewing,
            )

    def _close_order(self, domain_id: int, status: str, message: str) -> None:
        with self.store.session() as session:
            order = session.scalar(
                select(Order)
                .where(Order.domain_id == domain_id, Order.finished_at.is_(None))
                .order_by(Order.id.desc())
                .limit(1)
            )
            if order is not None:
                order.status = status
                order.error = message[:2000]
                order.finished_at = utcnow()
                session.execute(delete(Challenge).where(Challenge.order_id == order.id))


def _method_words(method: str, domain: str, dcv: ZoneUpdater | None, label: str | None) -> str:
    """How the order proves control of the name, for its event."""
    if method == METHOD_DNS01 and dcv is not None and label is not None:
        return (
            f" Validation: DNS-01, through the delegation {dcv_name(domain)} \u2192 "
            f"{dcv.fqdn(label)}."
        )
    return " Validation: HTTP-01, on the domain's own address."


def _order_message(renewing: bool, ca: str, reason: str, *, several: bool) -> str:
    """The event of a new order; with several CAs, which one and why."""
    if not several:
        return "Renewing the certificate." if renewing else "Requesting a certificate."
    if renewing:
        return f"Renewing the certificate with {ca} ({reason})."
    return f"Requesting a certificate from {ca} ({reason})."


def _through(order: Order) -> str:
    """Which configured CA the order went to and why, for messages (empty when not known)."""
    choice = (order.info or {}).get(CA_CHOICE)
    if not choice or not choice.get("reason"):
        return ""
    return f" (through {choice['ca']}: {choice['reason']})"


def _explain(exc: AcmeError) -> str:
    if exc.detail and exc.detail not in exc.message:
        return f"{exc.message}: {exc.detail}"
    return exc.message
