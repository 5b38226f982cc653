"""The worker: moves each due domain through its DNS and certificate states.

One pass over a domain: check its DNS; when DNS is fine and the domain needs a certificate
(none yet, or renewal is due), obtain one; then schedule the next look. Every state change is
an event with its reason. Saving a domain wakes the worker at once; otherwise it sleeps until
the earliest scheduled attempt, with a short poll as the safety net for other processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from linkcert.domains import record_event
from linkcert.states import CertState, DnsState, FailureClass
from linkcert.store import Domain, Store, utcnow
from linkcert.worker import leases
from linkcert.worker.schedule import dns_recheck_delay, renewal_due, renewal_time, retry_delay

log = logging.getLogger("linkcert.worker")

DNS_DRIFT_RECHECK = timedelta(hours=6)


@dataclass(frozen=True)
class DnsVerdict:
    """What the DNS readiness check concluded for one name."""

    state: DnsState
    problems: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class IssuanceFailure(Exception):
    """A certificate could not be obtained this time; `failure` decides the retry schedule."""

    failure: FailureClass
    message: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return self.message


DnsCheck = Callable[[str], Awaitable[DnsVerdict]]
# Obtains and stores a certificate for the leased domain (by id); raises IssuanceFailure.
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
        concurrency: int = 32,
        poll_interval: float = 1.0,
        worker_id: str | None = None,
        lease: timedelta = leases.DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.dns_check = dns_check
        self.obtain = obtain
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.worker_id = worker_id or default_worker_id()
        self.clock = clock
        self.lease = lease
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for due work now (called when a domain is saved or a retry is forced)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then let running passes finish."""
        log.info("worker started", extra={"worker_id": self.worker_id})
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:
                    # The store may be briefly unavailable: keep going, say so once per tick.
                    log.exception("worker tick failed; retrying")
                await self._sleep(stop)
        finally:
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
        try:
            await self.process(domain_id)
        except Exception as exc:
            log.exception("unexpected error on domain %s", domain_id)
            await asyncio.to_thread(
                self._schedule_failure,
                domain_id,
                FailureClass.INTERNAL,
                f"Internal error: {type(exc).__name__}",
                None,
            )
        finally:
            await asyncio.to_thread(leases.release, self.store, self.worker_id, domain_id)

    async def process(self, domain_id: int) -> None:
        """One pass over a leased domain."""
        snapshot = await asyncio.to_thread(self._load, domain_id)
        if snapshot is None:
            return
        name, wanted, needs_cert = snapshot
        if not wanted:
            await asyncio.to_thread(self._park, domain_id)
            return
        verdict = await self.dns_check(name)
        ready = await asyncio.to_thread(self._apply_dns, domain_id, verdict)
        if not ready:
            return
        if not needs_cert:
            await asyncio.to_thread(self._schedule_renewal, domain_id)
            return
        try:
            await self.obtain(domain_id)
        except IssuanceFailure as failure:
            await asyncio.to_thread(
                self._schedule_failure,
                domain_id,
                failure.failure,
                failure.message,
                failure.retry_after,
            )
            return
        await asyncio.to_thread(self._schedule_renewal, domain_id)

    # --- store steps (run in a thread) -------------------------------------------------------

    def _load(self, domain_id: int) -> tuple[str, bool, bool] | None:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None or domain.lease_owner != self.worker_id:
                return None
            return domain.name, domain.wanted, self._needs_certificate(session, domain)

    def _needs_certificate(self, session: Any, domain: Domain) -> bool:
        cert = domain.current_certificate
        if cert is None:
            return True
        return renewal_due(cert.not_before, cert.not_after, self.clock())

    def _park(self, domain_id: int) -> None:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is not None:
                domain.next_attempt_at = None

    def _apply_dns(self, domain_id: int, verdict: DnsVerdict) -> bool:
        now = self.clock()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                return False
            previous = domain.dns_state
            domain.dns_checked_at = now
            domain.problems = verdict.problems
            if verdict.state == DnsState.OK:
                domain.dns_state = DnsState.OK
                domain.moved_since = None
                if previous != DnsState.OK:
                    domain.attempts = 0
                    record_event(session, domain, "dns_ok", "DNS is set up correctly.")
                return True
            domain.dns_state = verdict.state
            domain.attempts += 1
            domain.failure_class = (
                FailureClass.CAA_FORBIDS
                if verdict.state == DnsState.CAA_BLOCKED
                else FailureClass.DNS_NOT_READY
            )
            domain.next_attempt_at = now + dns_recheck_delay(domain.attempts)
            if previous != verdict.state:
                message = verdict.problems[0]["message"] if verdict.problems else verdict.state
                record_event(session, domain, "dns_not_ready", message, problems=verdict.problems)
            return False

    def _schedule_failure(
        self, domain_id: int, failure: FailureClass, message: str, retry_after: float | None
    ) -> None:
        now = self.clock()
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                return
            domain.attempts += 1
            domain.failure_class = failure
            domain.next_attempt_at = now + retry_delay(failure, domain.attempts, retry_after)
            if domain.current_certificate_id is None:
                domain.cert_state = CertState.FAILED
            domain.problems = [{"code": failure.value, "message": message, "fix": ""}]
            record_event(
                session,
                domain,
                "issuance_failed",
                message,
                failure=failure.value,
                next_attempt_at=domain.next_attempt_at.isoformat(),
            )

    def _schedule_renewal(self, domain_id: int) -> None:
        with self.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None or domain.current_certificate is None:
                return
            cert = domain.current_certificate
            domain.attempts = 0
            domain.failure_class = None
            # Look again at renewal time, and meanwhile re-check DNS now and then so that a
            # domain whose DNS moved away is noticed before its renewal fails.
            domain.next_attempt_at = min(
                renewal_time(cert.not_before, cert.not_after), self.clock() + DNS_DRIFT_RECHECK
            )
