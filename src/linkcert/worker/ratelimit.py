"""Client-side CA rate limits: token buckets kept in the store and shared by every worker.

A CA such as Let's Encrypt meters requests with token buckets: a bucket holds up to `burst`
tokens, each request takes one, and tokens come back at a steady rate. linkcert keeps its own
copy of the buckets that concern it (table `rate_buckets`) and takes its tokens *before* asking
the CA, so that in normal operation the CA never has to answer `rateLimited`. The copy lives in
the database, so a restart does not refill it and every worker spends from the same budget.
(The CA may count more than linkcert sees, e.g. certificates others obtain for a customer's
registered domain; its own refusal then still holds the domain back, as before.)

Only the balance at `updated_at` is stored; what has flowed back since is computed on each
read, capped at the burst. An order needs tokens from several buckets at once (orders per
account, certificates per registered domain, duplicates of the same name): it gets all of them
or none, and a refusal says how long until all of them would have room.

Renewals come first when the budget is short. A new domain may only take a token while the
bucket keeps a reserve (`renewal_reserve`, a fraction of the burst) on top of it; a renewal may
take the last token. Below the reserve only renewals go ahead, so a wave of new customers
cannot make certificates that already serve links expire. This needs no queue shared between
workers, which "renewals take tokens first" would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from linkcert.acme.failures import never_reached_the_ca
from linkcert.ca_limits import (
    CERTIFICATE_LIMITS,
    CERTS_PER_DOMAIN,
    DEFAULT_RENEWAL_RESERVE,
    DUPLICATE_CERTS,
    FAILED_AUTHORIZATIONS,
    LIMIT_TEXT,
    NEW_ORDERS,
    RateLimit,
    limits_for,
)
from linkcert.states import FailureClass
from linkcert.store import Domain, Store, utcnow
from linkcert.store.inserts import insert_unless_present
from linkcert.store.models import RateBucket
from linkcert.worker.lifecycle import IssuanceFailure

if TYPE_CHECKING:
    from linkcert.config import Settings

# Balances are floats: a token counts as there when it is within this of a whole one.
_EPSILON = 1e-9

# --- buckets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketRequest:
    """One bucket an operation needs: `take` a token, or only check that one is there."""

    limit: str  # which configured limit sets the bucket's burst and refill
    key: str  # the bucket's row in rate_buckets
    about: str = ""  # what the bucket counts, for messages: a name, or empty for the account
    take: bool = True


@dataclass(frozen=True)
class Decision:
    """The answer to `acquire`: granted, or how long until every bucket would have room."""

    granted: bool
    wait_seconds: float = 0.0
    blocked_by: BucketRequest | None = None  # the bucket with the longest wait


GRANTED = Decision(True)


class RateLimiter:
    """Token buckets in the store, safe to share between threads, processes and hosts.

    Requests for limits that are not configured are let through without a bucket, so a limiter
    with no limits never touches the database.
    """

    def __init__(
        self,
        store: Store,
        limits: Mapping[str, RateLimit],
        clock: Callable[[], datetime] = utcnow,
        *,
        renewal_reserve: float = DEFAULT_RENEWAL_RESERVE,
    ) -> None:
        if not 0 <= renewal_reserve < 1:
            raise ValueError("renewal_reserve is a fraction of the burst, from 0 to below 1")
        self.store = store
        self.limits = dict(limits)
        self.clock = clock
        self.renewal_reserve = renewal_reserve

    def acquire(
        self,
        requests: Sequence[BucketRequest],
        now: datetime | None = None,
        *,
        renewal: bool = False,
    ) -> Decision:
        """Take a token from every bucket that `take`s, or from none of them.

        A new domain (`renewal` false) must leave the renewal reserve in each bucket it takes
        from; a renewal may take the last token.
        """
        wanted = self._configured(requests)
        if not wanted:
            return GRANTED
        moment = now or self.clock()
        with self.store.session() as session:
            buckets = self._lock(session, wanted, moment)
            balances = {r.key: self._balance(buckets[r.key], r, moment) for r in wanted}
            waits = [
                (self._wait(r, balances[r.key], renewal), r)
                for r in wanted
                if balances[r.key] + _EPSILON < self._needed(r, renewal)
            ]
            if waits:
                # The balances stay as they are. The refusal takes the next free turn at the
                # bucket that holds it longest: behind the operations already told to wait
                # there, one refill interval apart, so that they come back one at a time.
                wait, blocked = max(waits, key=lambda item: item[0])
                wait = self._queue(buckets[blocked.key], blocked, wait, moment)
                return Decision(False, wait, blocked)
            for request in wanted:
                if request.take:
                    self._save(buckets[request.key], request, balances[request.key] - 1, moment)
        return GRANTED

    def refund(self, requests: Sequence[BucketRequest], now: datetime | None = None) -> None:
        """Give back the tokens of an operation the CA never counted (never beyond the burst)."""
        self._adjust([r for r in requests if r.take], +1, now)

    def consume(self, requests: Sequence[BucketRequest], now: datetime | None = None) -> None:
        """Take a token whatever the balance, for something the CA has already counted."""
        self._adjust(requests, -1, now)

    # --- inside a transaction -----------------------------------------------------------------

    def _configured(self, requests: Sequence[BucketRequest]) -> list[BucketRequest]:
        by_key: dict[str, BucketRequest] = {}
        for request in requests:
            if request.limit not in self.limits:
                continue
            seen = by_key.get(request.key)
            if seen is None or (request.take and not seen.take):
                by_key[request.key] = request
        return list(by_key.values())

    def _lock(
        self, session: Session, requests: Sequence[BucketRequest], now: datetime
    ) -> dict[str, RateBucket]:
        """Each bucket row, created at full burst if missing, then locked for this transaction.

        One key at a time in sorted order: every transaction locks in the same order, so two
        workers needing overlapping buckets wait for each other instead of deadlocking. On
        SQLite the first statement is a write, so the whole transaction holds the write lock.
        """
        buckets: dict[str, RateBucket] = {}
        for request in sorted(requests, key=lambda r: r.key):
            limit = self.limits[request.limit]
            _create_if_missing(session, request.key, limit, now)
            buckets[request.key] = session.scalars(
                select(RateBucket).where(RateBucket.key == request.key).with_for_update()
            ).one()
        return buckets

    def _balance(self, bucket: RateBucket, request: BucketRequest, now: datetime) -> float:
        limit = self.limits[request.limit]
        return _refilled(bucket.tokens, bucket.updated_at, limit.burst, limit.refill_seconds, now)

    def _queue(
        self, bucket: RateBucket, request: BucketRequest, wait: float, now: datetime
    ) -> float:
        """Hand out the next free turn at `bucket`; returns the wait until it.

        The turn is when the bucket has room (`wait` from now), or one refill interval after
        the last turn handed out, whichever is later.
        """
        turn = now + timedelta(seconds=wait)
        last = bucket.waiting_until
        if last is not None:
            turn = max(turn, last + timedelta(seconds=self.limits[request.limit].refill_seconds))
        bucket.waiting_until = turn
        return (turn - now).total_seconds()

    def _needed(self, request: BucketRequest, renewal: bool) -> float:
        if renewal or not request.take:
            return 1.0
        burst = self.limits[request.limit].burst
        # With a tiny burst the reserve cannot leave a whole token: new domains then need one.
        return min(float(burst), 1.0 + self.renewal_reserve * burst)

    def _wait(self, request: BucketRequest, balance: float, renewal: bool) -> float:
        missing = self._needed(request, renewal) - balance
        return missing * self.limits[request.limit].refill_seconds

    def _save(
        self, bucket: RateBucket, request: BucketRequest, tokens: float, now: datetime
    ) -> None:
        limit = self.limits[request.limit]
        bucket.tokens = tokens
        # Another host's clock may be a little behind: never move a bucket's time backwards,
        # or the refill between the two times would be counted twice.
        bucket.updated_at = max(bucket.updated_at, now)
        bucket.burst = float(limit.burst)
        bucket.refill_seconds = limit.refill_seconds

    def _adjust(self, requests: Sequence[BucketRequest], delta: int, now: datetime | None) -> None:
        wanted = self._configured(requests)
        if not wanted:
            return
        moment = now or self.clock()
        with self.store.session() as session:
            buckets = self._lock(session, wanted, moment)
            for request in wanted:
                burst = self.limits[request.limit].burst
                balance = self._balance(buckets[request.key], request, moment) + delta
                self._save(buckets[request.key], request, min(burst, max(0.0, balance)), moment)


def _refilled(
    tokens: float, updated_at: datetime, burst: float, refill_seconds: float, now: datetime
) -> float:
    elapsed = max(0.0, (now - updated_at).total_seconds())
    return min(burst, tokens + elapsed / refill_seconds)


def _create_if_missing(session: Session, key: str, limit: RateLimit, now: datetime) -> None:
    values = {
        "key": key,
        "tokens": float(limit.burst),
        "updated_at": now,
        "burst": float(limit.burst),
        "refill_seconds": limit.refill_seconds,
    }
    # A concurrent creator wins quietly; this transaction then locks the row it made.
    session.execute(insert_unless_present(session, RateBucket, values, ["key"]))


def budget_left(store: Store, keys: Iterable[str], now: datetime | None = None) -> dict[str, float]:
    """Tokens in each bucket now, refill included (for metrics).

    Uses the limit each bucket was last spent under, so no configuration is needed. A key
    without a row (never spent from) is left out: its bucket is full, at a burst not known here.
    """
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    moment = now or utcnow()
    with store.session() as session:
        rows = session.scalars(select(RateBucket).where(RateBucket.key.in_(wanted))).all()
        return {
            row.key: _refilled(row.tokens, row.updated_at, row.burst, row.refill_seconds, moment)
            for row in rows
        }


def rate_limiter_for(
    store: Store, settings: Settings, clock: Callable[[], datetime] = utcnow
) -> RateLimiter:
    """The limiter the settings ask for (no limits at all for a CA without defaults)."""
    return RateLimiter(
        store,
        limits_for(settings.acme_directory_url, settings.acme_rate_limits),
        clock,
        renewal_reserve=settings.acme_renewal_reserve,
    )


# --- around one ACME order -------------------------------------------------------------------


def bucket_key(limit: str, account_id: int, name: str | None = None) -> str:
    """The row key of a bucket: per ACME account, and per name for the per-name limits.

    The account id stands for the CA: linkcert has one account per directory, and a bucket of
    one CA must never hold back orders at another.
    """
    return f"{limit}:{account_id}" if name is None else f"{limit}:{account_id}:{name}"


def order_requests(account_id: int, name: str, registrable: str) -> list[BucketRequest]:
    """The buckets a new order for `name` needs."""
    return [
        BucketRequest(NEW_ORDERS, bucket_key(NEW_ORDERS, account_id)),
        BucketRequest(
            CERTS_PER_DOMAIN, bucket_key(CERTS_PER_DOMAIN, account_id, registrable), registrable
        ),
        BucketRequest(DUPLICATE_CERTS, bucket_key(DUPLICATE_CERTS, account_id, name), name),
        # Checked, not taken: the CA counts a validation only when it fails.
        failed_authorization(account_id, name, take=False),
    ]


def failed_authorization(account_id: int, name: str, *, take: bool = True) -> BucketRequest:
    key = bucket_key(FAILED_AUTHORIZATIONS, account_id, name)
    return BucketRequest(FAILED_AUTHORIZATIONS, key, name, take)


@dataclass(frozen=True)
class Charge:
    """What one order took from the budget, so that it can be given back."""

    account_id: int
    name: str
    taken: tuple[BucketRequest, ...] = ()
    exempt: bool = False


class IssuanceBudget:
    """The CA rate limits around an order, as `Issuer` needs them."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def before_new_order(self, domain_id: int, account_id: int, *, exempt: bool) -> Charge:
        """Take what a new order needs, or raise IssuanceFailure(RATE_LIMITED) with the wait.

        `exempt` is for renewals the CA does not count (ARI renewals that send `replaces`).
        """
        with self.limiter.store.session() as session:
            domain = session.get(Domain, domain_id)
            if domain is None:
                raise IssuanceFailure(FailureClass.INTERNAL, "the domain was removed")
            name, registrable = domain.name, domain.registrable
            renewal = domain.current_certificate_id is not None
        if exempt or not self.limiter.limits:
            return Charge(account_id, name, exempt=exempt)
        requests = order_requests(account_id, name, registrable)
        now = self.limiter.clock()
        decision = self.limiter.acquire(requests, now, renewal=renewal)
        if not decision.granted:
            raise IssuanceFailure(
                FailureClass.RATE_LIMITED,
                self._waiting_message(name, decision, now),
                retry_after=decision.wait_seconds,
            )
        return Charge(account_id, name, tuple(r for r in requests if r.take))

    def resumed(self, account_id: int, name: str) -> Charge:
        """An order placed earlier: it was counted then, and nothing is given back for it."""
        return Charge(account_id, name)

    def order_not_placed(self, charge: Charge, error: BaseException) -> None:
        """The new-order request failed; refund it when it never reached the CA."""
        if never_reached_the_ca(error):
            self.limiter.refund(charge.taken)

    def order_failed(self, charge: Charge) -> None:
        """The order ended without a certificate: the certificate limits were not spent."""
        self.limiter.refund([r for r in charge.taken if r.limit in CERTIFICATE_LIMITS])

    def validation_failed(self, charge: Charge) -> None:
        """The CA could not validate the name: it counted a failed authorization."""
        self.order_failed(charge)
        if not charge.exempt:
            self.limiter.consume([failed_authorization(charge.account_id, charge.name)])

    def _waiting_message(self, name: str, decision: Decision, now: datetime) -> str:
        blocked = decision.blocked_by
        assert blocked is not None
        limit = self.limiter.limits[blocked.limit]
        subject = f"{blocked.about}: {limit}" if blocked.about else str(limit)
        until = now + timedelta(seconds=decision.wait_seconds)
        return (
            f"The certificate for {name} waits for room under the certificate authority's "
            f"rate limits. The limit on {LIMIT_TEXT.get(blocked.limit, blocked.limit)} "
            f"({subject}) has room again at {until:%Y-%m-%d %H:%M} UTC, in "
            f"{_wait_text(decision.wait_seconds)}. linkcert paces its requests and retries by "
            "itself; nothing needs to be done."
        )


# --- text ------------------------------------------------------------------------------------


def _wait_text(seconds: float) -> str:
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes = math.ceil(whole / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"
