"""The worker: moves each due domain through its DNS and certificate states.

One pass over a domain: check its DNS; when DNS is fine and the domain needs a certificate
(none yet, or renewal is due), obtain one; then schedule the next look. Every state change is
an event with its reason. Saving a domain wakes the worker at once; otherwise it sleeps until
the earliest scheduled attempt, with a short poll as the safety net for other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from linkcert import ownership_store as ownership
from linkcert.counters import count_issuance_failure
from linkcert.domains import record_event
from linkcert.notify import NotificationKind, Notifier
from linkcert.renewal import renewal_due, renewal_time
from linkcert.states import (
    TRANSIENT_CA_FAILURES,
    CertState,
    DcvState,
    DnsState,
    FailureClass,
    state_after_failure,
)
from linkcert.store import Domain, Order, Store, signals, utcnow
from linkcert.worker import leases
from linkcert.worker.cachoice import PERMITTED_CAS
from linkcert.worker.schedule import dns_recheck_delay, retry_delay

log = logging.getLogger("linkcert.worker")

MOVED_RECHECK = timedelta(hours=1)
ARI_RETRY = timedelta(hours=1)
# The challenge the issuer answers for the domain of this task: "dns-01" when its
# `_acme-challenge` is delegated to the owner, else "http-01" (set by each pass).
CHALLENGE_METHOD: contextvars.ContextVar[str] = contextvars.ContextVar(
    "CHALLENGE_METHOD", default="http-01"
)
# Failures a crash can cause (the CA validated while no edge answered): retried at once, once.
INTERRUPTIBLE = frozenset({FailureClass.CHALLENGE_FAILED, FailureClass.CA_REJECTED})


@dataclass(frozen=True)
class LifecyclePolicy:
    """The operator's choices about timing (settings), with the defaults the CA advises."""

    dns_recheck: timedelta = timedelta(hours=6)
    release_after: timedelta = timedelta(days=7)
    expiry_warning: timedelta = timedelta(days=7)


def expiry_warning(not_before: datetime, not_after: datetime, policy: LifecyclePolicy) -> timedelta:
    """How long before expiry an unrenewed certificate counts as expiring.

    Never more than a quarter of the certificate's own lifetime, so that short-lived
    certificates are not "expiring" from the day they are issued.
    """
    return min(policy.expiry_warning, (not_after - not_before) / 4)


@dataclass(frozen=True)
class _Snapshot:
    name: str
    wanted: bool
    delete_requested: bool
    has_certificate: bool
    ari_due: bool
    claimed: bool  # other accounts' claims wait for DNS to prove one of them


@dataclass(frozen=True)
class DnsVerdict:
    """What the DNS readiness check concluded for one name.

    `labels` are the account labels DNS names (the account's own CNAME target, or its TXT
    record); `shared` says the name leads to the platform's shared target or edge addresses,
    which proves no account but still counts for names verified that way before (`legacy`).
    `problems_for(label)` gives the problems as that account must read them.
    """

    state: DnsState
    problems: list[dict[str, str]] = field(default_factory=list)
    # The names of the configured CAs the CAA records permit (None: every CA, or not judged).
    permitted_cas: tuple[str, ...] | None = None
    labels: frozenset[str] = frozenset()
    shared: bool = True
    problems_for: Callable[[str, str | None], list[dict[str, str]]] | None = None
    # Delegated DNS-01 (None when no `dcv_zone` is configured): the label the name's
    # `_acme-challenge` CNAME names in the delegation zone, and whether CAA lets the CA
    # validate by dns-01. The label is an account's for this name (`ownership.dcv_label`).
    dcv: DcvSeen | None = None

    def account_problems(self, label: str, dcv_label: str | None = None) -> list[dict[str, str]]:
        if self.problems_for is None:
            return self.problems
        return self.problems_for(label, dcv_label)

    def names(self, dns_label: str, dcv_label: str | None) -> bool:
        """Whether DNS names the account: its target, its TXT record or its delegation."""
        if dns_label in self.labels:
            return True
        return self.dcv is not None and dcv_label is not None and self.dcv.label == dcv_label

    def dcv_state(self, dcv_label: str | None) -> DcvState | None:
        """The delegation's state for the account with `dcv_label` (None: none offered)."""
        if self.dcv is None or dcv_label is None:
            return None
        if self.dcv.failed:
            return DcvState.LOOKUP_FAILED
        if self.dcv.target is None:
            return DcvState.MISSING
        if self.dcv.label != dcv_label:
            return DcvState.WRONG_TARGET
        return DcvState.OK if self.dcv.caa_allows else DcvState.CAA_FORBIDS


@dataclass(frozen=True)
class DcvSeen:
    """What the DNS check found at `_acme-challenge.<name>`."""

    target: str | None  # the CNAME's target, None without one
    label: str | None  # its label in the delegation zone, when it is `<label>.<dcv_zone>`
    caa_allows: bool
    failed: bool = False


@dataclass(frozen=True)
class IssuanceFailure(Exception):
    """A certificate could not be obtained this time; `failure` decides the retry schedule."""

    failure: FailureClass
    message: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


DnsCheck = Callable[[str], Awaitable[DnsVerdict]]
# A step with the CA for the leased domain (by id): obtain or renew its certificate, refresh
# its renewal information, or revoke and erase it. Raises IssuanceFailure.
Obtain = Callable[[int], Awaitable[None]]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs the lifecycle of every domain in the store, several at a time."""

    def __init__(
        self,
        store: Store,
        dns_check: DnsCheck,
        obtain: Obtain,
        *,
        refresh: Obtain | None = None,
        remove: Obtain | None = None,
        policy: LifecyclePolicy | None = None,
        notifier: Notifier | None = None,
        concurrency: int = 32,
        poll_interval: float = 1.0,
        worker_id: str | None = None,
        lease: timedelta = leases.DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
        reclaim: bool = False,
    ) -> None:
        self.store = store
        self.dns_check = dns_check
        self.obtain = obtain
        self.refresh = refresh
        self.remove = remove
        self.policy = policy or LifecyclePolicy()
        self.notifier = notifier
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.lease = lease
        # True when worker_id is stable across runs and no other live process can hold it.
        self.reclaim = reclaim
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        # Domains with a pass running here: a lease renewed by a claim (it had run out while
        # the pass was slow) must not start a second pass on the same domain.
        self._busy: set[int] = set()

    def wake(self) -> None:
        """Look for due work now (called when a domain is saved or a retry is forced)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then let running passes finish."""
        log.info("worker started", extra={"worker_id": self.worker_id})
        if self.reclaim:
            # This identity is ours alone (a lock proves it): leases under it are a dead
            # run's, and its domains are resumed now rather than when the leases run out.
            try:
                freed = await asyncio.to_thread(leases.reclaim_own, self.store, self.worker_id)
            except Exception:
                log.exception("could not take back the leases of an earlier run; they expire")
            else:
                if freed:
                    log.info("resuming %d domain(s) an earlier run had in hand", freed)
        listener = None
        if self.store.dialect == "postgresql":
            # Saves in other processes (the API, a CLI) announce due work: start at once.
            listener = asyncio.ensure_future(
                signals.listen(self.store.url, [signals.WORK], lambda _c, _p: self.wake(), stop)
            )
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:
                    # The store may be briefly unavailable: keep going, say so once per tick.
                    log.exception("worker tick failed; retrying")
                await self._sleep(stop)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)

    async def _sleep(self, stop: asyncio.Event) -> None:
        timeout = self.poll_interval
        try:
            due = await asyncio.to_thread(leases.next_due, self.store, self.clock())
        except Exception:
            due = None
        if due is not None:
            timeout = max(0.0, min(timeout, (due - self.clock()).total_seconds()))
        if len(self._running) >= self.concurrency:
            timeout = self.poll_interval
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        self._wake.clear()

    async def tick(self) -> int:
        """Start a pass for every due domain there is room for; return how many started."""
        room = self.concurrency - len(self._running)
        if room <= 0:
            return 0
        ids = await asyncio.to_thread(
            leases.claim_due, self.store, self.worker_id, self.clock(), room, self.lease
        )
        for domain_id in ids:
            if domain_id in self._busy:
                continue
            self._busy.add(domain_id)
            task = asyncio.create_task(self._pass(domain_id))
            self._running.add(task)
            task.add_done_callback(self._finished)
        return len(ids)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        # A finished pass frees room: look again for due work without waiting.
        self._wake.set()

    async def run_until_idle(self, limit: float = 60.0) -> None:
        """Process due work until nothing is due or running (for tests and one-shot runs)."""
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            started = await self.tick()
            if not started and not self._running:
                return
            if self._running:
                await asyncio.wait(list(self._running), timeout=0.5)
        raise TimeoutError("work was still running when the timeout passed")

    async def _pass(self, domain_id: int) -> None:
        leases.HOLDER.set(self.worker_id)  # this task's context only
        heartbeat = asyncio.ensure_future(self._keep_lease(domain_id))
        try:
            await self.process(domain_id)
        except leases.LeaseLost as lost:
            log.info("stopped work on a domain another worker took over: %s", lost)
            return
        except Exception as exc:
            log.exception("unexpected error on domain %s", domain_id)
            # The store itself may be what failed (PostgreSQL restarting): then the lease
            # simply expires and the domain is taken up again, its order resumed.
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    self._schedule_failure,
                    domain_id,
                    FailureClass.INTERNAL,
                    f"Internal error: {type(exc).__name__}",
                    None,
                )
        finally:
            heartbeat.cancel()
            self._busy.discard(domain_id)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(leases.release, self.store, self.worker_id, domain_id)

    async def _keep_lease(self, domain_id: int) -> None:
        """Extend the lease while a pass runs, so a slow CA does not hand the domain to
        another worker; the lease still runs out soon after this worker dies."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                kept = await asyncio.to_thread(
                    leases.extend, self.store, self.worker_id, domain_id, self.clock() + self.lease
                )
            except Exception:
                log.debug("lease on domain %s not extended yet; store unreachable", domain_id)
                continue
            if not kept:
                log.warning("lease on domain %s was lost; another worker took over", domain_id)
                return

    async def process(self, domain_id: int) -> None:
        """One pass over a leased domain."""
        snap = await asyncio.to_thread(self._load, domain_id)
        if snap is None:
            return
        if snap.delete_requested:
            await self._attempt(domain_id, self.remove, then=self._park)
            return
        if not snap.wanted and not snap.claimed:
            await asyncio.to_thread(self._park, domain_id)
            return
        verdict = await self.dns_check(snap.name)
        method = await asyncio.to_thread(self._apply_dns, domain_id, verdict)
        if method is None:
            return
        CHALLENGE_METHOD.set(method)  # this task's context only, like PERMITTED_CAS
        if not await asyncio.to_thread(self._still_wanted, domain_id):
            await asyncio.to_thread(self._park, domain_id)
            return
        # The issuer picks among the CAs this check found permitted (this task's context only).
        PERMITTED_CAS.set(verdict.permitted_cas)
        if snap.has_certificate and snap.ari_due and self.refresh is not None:
            try:
                await self.refresh(domain_id)
            except Exception as exc:
                # Renewal information is advice: without it the planned time still stands.
                log.warning("renewal information for %s unavailable: %s", snap.name, exc)
                await asyncio.to_thread(self._postpone_ari, domain_id)
        if not await asyncio.to_thread(self._needs_certificate, domain_id):
            await asyncio.to_thread(self._schedule_renewal, domain_id)
            return
        resumed = await asyncio.to_thread(self._has_open_order, domain_id)
        await self._attempt(domain_id, self.obtain, then=self._schedule_renewal, resumed=resumed)

    async def _attempt(
        self,
        domain_id: int,
        step: Callable[[int], Awaitable[None]] | None,
        then: Callable[[int], None],
        resumed: bool = False,
    ) -> None:
        """Run a CA step; on failure schedule the retry its class calls for.

        An order resumed from an earlier pass (its worker died or was restarted) may have
        failed validation only because nobody answered the CA meanwhile: its first failure is
        retried at once with a new order, not after the usual back-off.
        """
        if step is None:
            return
        try:
            await step(domain_id)
        except IssuanceFailure as failure:
            interrupted = resumed and failure.failure in INTERRUPTIBLE
            await asyncio.to_thread(
                self._schedule_failure,
                domain_id,
                failure.failure,
                failure.message,
                failure.retry_after,
                interrupted,
            )
            return
        await asyncio.to_thread(then, domain_id)

    # --- store steps (run in a thread) -------------------------------------------------------

    def _load(self, domain_id: int) -> _Snapshot | None:
        now = self.clock()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None or domain.lease_owner != self.worker_id:
                return None
            cert = domain.current_certificate
            ari_due = cert is not None and (
                cert.ari_next_check_at is None or cert.ari_next_check_at <= now
            )
            return _Snapshot(
                name=domain.name,
                wanted=domain.wanted,
                delete_requested=domain.delete_requested,
                has_certificate=cert is not None,
                ari_due=ari_due,
                claimed=bool(ownership.live_claims(session, domain, now)),
            )

    def _still_wanted(self, domain_id: int) -> bool:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            return domain is not None and domain.wanted and domain.account_id is not None

    def _needs_certificate(self, domain_id: int) -> bool:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                return False
            cert = domain.current_certificate
            if cert is None:
                return True
            now = self.clock()
            if cert.renew_at is not None:
                return now >= cert.renew_at
            return renewal_due(cert.not_before, cert.not_after, now)

    def _park(self, domain_id: int) -> None:
        """No more renewals: look again only when the current certificate expires, or when
        the claims of other accounts are due a DNS check."""
        now = self.clock()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                return
            recheck = ownership.claims_recheck_at(session, domain, now)
            if recheck is not None:
                if domain.account_id is None:
                    domain.wanted = True  # a claim saved during a deletion: look at it now
                    domain.next_attempt_at = now
                else:
                    domain.next_attempt_at = recheck
                return
            cert = domain.current_certificate
            if cert is not None and cert.not_after > now:
                domain.next_attempt_at = cert.not_after
            else:
                domain.next_attempt_at = None
                if cert is not None:
                    self._mark_expiry(session, domain, now)

    def _postpone_ari(self, domain_id: int) -> None:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is not None and domain.current_certificate is not None:
                domain.current_certificate.ari_next_check_at = self.clock() + ARI_RETRY

    def _apply_dns(self, domain_id: int, verdict: DnsVerdict) -> str | None:
        """Record what DNS says; return the challenge to answer when a certificate can be
        had now ("http-01", or "dns-01" through the owner's delegation), else None."""
        now = self.clock()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                return None
            previous = domain.dns_state
            domain.dns_checked_at = now
            proven = ownership.settle(session, domain, verdict, now)
            if domain.account_id is None:
                # Nobody's claim is proven: wait for DNS, or for good once every claim expired.
                self._unowned(session, domain, verdict, now)
                return None
            owner = domain.account
            owner_label = owner.dns_label if owner is not None else ""
            owner_dcv = ownership.dcv_label_of(owner, domain) if verdict.dcv else None
            domain.problems = verdict.account_problems(owner_label, owner_dcv)
            dcv_state = verdict.dcv_state(owner_dcv)
            domain.dcv_state = dcv_state.value if dcv_state is not None else None
            domain.dcv_found = verdict.dcv.target if verdict.dcv is not None else None
            delegated = proven and dcv_state is DcvState.OK
            if proven:
                # Proven by the operator (an approved brand domain) or before accounts had their
                # own targets: "not yet proven to be yours" would contradict the secured status.
                domain.problems = [
                    p for p in domain.problems if p.get("code") != "ownership_not_proven"
                ]
            if verdict.state in (DnsState.OK, DnsState.DELEGATED) and not proven:
                # The name leads to the platform, but no longer names its owner's account.
                verdict = DnsVerdict(DnsState.POINTS_ELSEWHERE, domain.problems)
            if verdict.state == DnsState.DELEGATED and not delegated:
                # Delegated, but to another label than the owner's: not through this account.
                verdict = DnsVerdict(DnsState.POINTS_ELSEWHERE, domain.problems)
            if verdict.state == DnsState.DELEGATED:
                domain.dns_state = DnsState.DELEGATED
                domain.moved_since = None
                if previous != DnsState.DELEGATED:
                    domain.attempts = 0
                    record_event(
                        session,
                        domain,
                        "dns_delegated",
                        "The certificate checks of the domain are delegated to us: it is "
                        "secured by DNS-01 before its CNAME points here.",
                    )
                return "dns-01"
            if verdict.state == DnsState.OK:
                domain.dns_state = DnsState.OK
                domain.moved_since = None
                if previous == DnsState.MOVED:
                    domain.attempts = 0
                    record_event(
                        session,
                        domain,
                        "dns_back",
                        "The domain points to us again; renewals resume.",
                    )
                elif previous == DnsState.DELEGATED:
                    record_event(
                        session,
                        domain,
                        "dns_switched",
                        "The domain now points to us; its certificate was already in place.",
                    )
                elif previous != DnsState.OK:
                    domain.attempts = 0
                    record_event(session, domain, "dns_ok", "DNS is set up correctly.")
                return "dns-01" if delegated else "http-01"
            domain.attempts += 1
            secured_before = domain.current_certificate_id is not None and previous in (
                DnsState.OK,
                DnsState.MOVED,
                DnsState.DELEGATED,
            )
            if secured_before and verdict.state == DnsState.POINTS_ELSEWHERE:
                self._moved(session, domain, verdict, now, delegated=previous == DnsState.DELEGATED)
                return None
            domain.dns_state = verdict.state
            domain.failure_class = (
                FailureClass.CAA_FORBIDS
                if verdict.state == DnsState.CAA_BLOCKED
                else FailureClass.DNS_NOT_READY
            )
            domain.next_attempt_at = now + dns_recheck_delay(domain.attempts)
            if domain.current_certificate is not None:
                self._mark_expiry(session, domain, now)
            if previous != verdict.state:
                message = verdict.problems[0]["message"] if verdict.problems else verdict.state
                record_event(session, domain, "dns_not_ready", message, problems=verdict.problems)
            return None

    def _unowned(
        self, session: Session, domain: Domain, verdict: DnsVerdict, now: datetime
    ) -> bool:
        claims = ownership.live_claims(session, domain, now)
        domain.problems = (
            verdict.account_problems(
                claims[0].account.dns_label, ownership.dcv_label_of(claims[0].account, domain)
            )
            if claims
            else verdict.problems
        )
        state = DnsState.NOT_PROVEN if verdict.state == DnsState.OK else verdict.state
        if domain.dns_state != state:
            message = domain.problems[0]["message"] if domain.problems else state
            record_event(session, domain, "dns_not_ready", message, problems=domain.problems)
        domain.dns_state = state
        domain.attempts += 1
        domain.failure_class = FailureClass.DNS_NOT_READY
        if claims:
            last = max(claim.expires_at for claim in claims)
            domain.next_attempt_at = min(now + dns_recheck_delay(domain.attempts), last)
        else:
            domain.wanted = False
            domain.next_attempt_at = None
        return False

    def _moved(
        self,
        session: Session,
        domain: Domain,
        verdict: DnsVerdict,
        now: datetime,
        *,
        delegated: bool = False,
    ) -> bool:
        """A secured domain whose DNS left us: stop renewing, keep serving, release later."""
        if domain.dns_state != DnsState.MOVED:
            domain.dns_state = DnsState.MOVED
            domain.moved_since = now
            message = (
                "The domain no longer points to us: renewals stop, and the current certificate "
                "keeps serving links until it expires."
            )
            if delegated:
                message = (
                    "The delegation of the domain's certificate checks to us is gone and the "
                    "domain does not point to us: the certificate cannot be renewed and expires "
                    f"on {domain.current_certificate.not_after:%Y-%m-%d} UTC. Restore the "
                    "delegation or switch the CNAME before then."
                    if domain.current_certificate is not None
                    else "The delegation of the domain's certificate checks to us is gone."
                )
            record_event(session, domain, "moved", message, problems=verdict.problems)
            self._tell(session, NotificationKind.MOVED, domain, message)
        moved_since = domain.moved_since or now
        if now - moved_since >= self.policy.release_after:
            domain.wanted = False
            domain.next_attempt_at = None
            message = (
                f"Released after {self.policy.release_after.days} days without pointing to us; "
                "its links stop working, and saving it again starts a new claim."
            )
            record_event(session, domain, "released", message)
            self._tell(session, NotificationKind.RELEASED, domain, message)
            ownership.release(session, domain)
            return False
        domain.failure_class = FailureClass.DNS_NOT_READY
        domain.next_attempt_at = now + min(dns_recheck_delay(domain.attempts), MOVED_RECHECK)
        self._mark_expiry(session, domain, now)
        return False

    def _mark_expiry(self, session: Session, domain: Domain, now: datetime) -> None:
        """Expired, or expiring soon with no successful renewal: say so, once."""
        cert = domain.current_certificate
        if cert is None or domain.cert_state in (CertState.REVOKED,):
            return
        if now >= cert.not_after:
            state, kind = CertState.EXPIRED, "expired"
            message = f"The certificate expired on {cert.not_after:%Y-%m-%d %H:%M} UTC."
        elif cert.not_after - now <= expiry_warning(cert.not_before, cert.not_after, self.policy):
            state, kind = CertState.EXPIRING, "expiring"
            message = (
                f"The certificate expires on {cert.not_after:%Y-%m-%d %H:%M} UTC and has not "
                "been renewed yet."
            )
        else:
            return
        if domain.cert_state != state:
            domain.cert_state = state
            record_event(session, domain, kind, message)
            # Expiry warnings come from the expiry watch, which also covers uploads.
            if state == CertState.EXPIRED:
                self._tell(session, NotificationKind.EXPIRED, domain, message)

    def _has_open_order(self, domain_id: int) -> bool:
        """Whether an order placed by an earlier pass is still open (this pass resumes it)."""
        with self.store.session() as session:
            found = session.scalar(
                select(Order.id).where(Order.domain_id == domain_id, Order.finished_at.is_(None))
            )
            return found is not None

    def _schedule_failure(
        self,
        domain_id: int,
        failure: FailureClass,
        message: str,
        retry_after: float | None,
        interrupted: bool = False,
    ) -> None:
        now = self.clock()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                return
            first = domain.attempts == 0
            domain.attempts += 1
            domain.failure_class = failure
            domain.next_attempt_at = now + retry_delay(failure, domain.attempts, retry_after)
            if interrupted and first:
                domain.next_attempt_at = now
                record_event(
                    session,
                    domain,
                    "order_interrupted",
                    "An order resumed after a restart had failed validation while linkcert "
                    "was down; trying again now with a new order.",
                )
            waiting = False
            if domain.current_certificate_id is None:
                domain.cert_state = state_after_failure(failure, domain.attempts)
                waiting = domain.cert_state == CertState.WAITING_FOR_CA
            else:
                self._mark_expiry(session, domain, now)
            fix = (
                "Nothing to do: linkcert tries again by itself at "
                f"{domain.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC."
                if failure in TRANSIENT_CA_FAILURES
                and (waiting or domain.current_certificate_id is not None)
                else ""
            )
            domain.problems = [{"code": failure.value, "message": message, "fix": fix}]
            count_issuance_failure(failure.value)
            if domain.current_certificate_id is not None and failure != FailureClass.RATE_LIMITED:
                self._tell(
                    session,
                    NotificationKind.RENEWAL_FAILED,
                    domain,
                    message,
                    failure=failure.value,
                )
            if failure == FailureClass.RATE_LIMITED:
                kind = "waiting_for_budget"
            elif waiting:
                kind = "waiting_for_ca"
            else:
                kind = "issuance_failed"
            record_event(
                session,
                domain,
                kind,
                message,
                failure=failure.value,
                next_attempt_at=domain.next_attempt_at.isoformat(),
            )

    def _tell(
        self,
        session: Session,
        kind: NotificationKind,
        domain: Domain,
        message: str,
        **details: str,
    ) -> None:
        """Record an alert in the same transaction as the change it reports."""
        if self.notifier is not None:
            self.notifier.emit(session, kind, domain, message=message, details=details)

    def _schedule_renewal(self, domain_id: int) -> None:
        now = self.clock()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None or domain.current_certificate is None:
                return
            cert = domain.current_certificate
            domain.attempts = 0
            domain.failure_class = None
            renew_at = cert.renew_at or renewal_time(cert.not_before, cert.not_after)
            # Look again at renewal time; meanwhile ask the CA's renewal information and
            # re-check DNS now and then, so that a domain whose DNS moved away is noticed
            # before its renewal fails.
            candidates = [renew_at, now + self.policy.dns_recheck]
            if cert.ari_next_check_at is not None:
                candidates.append(cert.ari_next_check_at)
            # Other accounts' claims are checked sooner: DNS may come to name one of them.
            recheck = ownership.claims_recheck_at(session, domain, now)
            if recheck is not None:
                candidates.append(recheck)
            domain.next_attempt_at = max(now, min(candidates))
