"""Token buckets in the store: refill, all-or-nothing, persistence, the renewal reserve, and
several workers spending from the same buckets at once."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from linkcert.ca_limits import RateLimit
from linkcert.store import Store
from linkcert.worker.ratelimit import BucketRequest, Decision, RateLimiter, budget_left

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.fixture
def buckets(store: Store) -> Store:
    """The store, whose migrations made the rate_buckets table."""
    return store


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def take(key: str, limit: str = "orders") -> BucketRequest:
    return BucketRequest(limit, key)


def check(key: str, limit: str = "orders") -> BucketRequest:
    return BucketRequest(limit, key, take=False)


def test_a_bucket_refills_over_time_up_to_its_burst(buckets: Store) -> None:
    clock = Clock()
    # Three at once, then one back every 10 s.
    limiter = RateLimiter(buckets, {"orders": RateLimit(3, 30)}, clock, renewal_reserve=0)
    assert [limiter.acquire([take("o")]).granted for _ in range(3)] == [True] * 3

    refused = limiter.acquire([take("o")])
    assert refused == Decision(False, 10.0, take("o"))
    clock.now = at(4)
    # Another operation refused meanwhile gets the turn after the first one's.
    assert limiter.acquire([take("o")]).wait_seconds == pytest.approx(16.0)
    clock.now = at(10)
    assert limiter.acquire([take("o")]).granted
    assert not limiter.acquire([take("o")]).granted

    # A long pause refills to the burst and no further.
    clock.now = at(10_000)
    assert [limiter.acquire([take("o")]).granted for _ in range(4)] == [True] * 3 + [False]
    assert budget_left(buckets, ["o"], at(10_000)) == {"o": 0.0}


def test_all_or_nothing_across_buckets(buckets: Store) -> None:
    limits = {"per_account": RateLimit(1, 60), "per_name": RateLimit(2, 60)}
    limiter = RateLimiter(buckets, limits, renewal_reserve=0)
    account = BucketRequest("per_account", "account")
    name = BucketRequest("per_name", "name")
    assert limiter.acquire([account], NOW).granted

    refused = limiter.acquire([name, account], NOW)
    assert not refused.granted
    assert refused.blocked_by == account
    assert refused.wait_seconds == pytest.approx(60.0)
    # The bucket that had room kept it.
    assert budget_left(buckets, ["account", "name"], NOW) == {"account": 0.0, "name": 2.0}

    assert limiter.acquire([name, account], at(60)).granted
    assert budget_left(buckets, ["account", "name"], at(60)) == {"account": 0.0, "name": 1.0}


def test_a_refusal_names_the_bucket_with_the_longest_wait(buckets: Store) -> None:
    limits = {"slow": RateLimit(1, 100), "fast": RateLimit(1, 10)}
    limiter = RateLimiter(buckets, limits, renewal_reserve=0)
    slow, fast = BucketRequest("slow", "s"), BucketRequest("fast", "f")
    assert limiter.acquire([slow, fast], NOW).granted
    refused = limiter.acquire([fast, slow], at(5))
    assert refused.blocked_by == slow
    assert refused.wait_seconds == pytest.approx(95.0)


def test_buckets_survive_a_restart(buckets: Store, db_url: str) -> None:
    limits = {"orders": RateLimit(3, 30)}
    first = RateLimiter(buckets, limits, renewal_reserve=0)
    assert first.acquire([take("o")], NOW).granted
    assert first.acquire([take("o")], NOW).granted
    buckets.close()

    reopened = Store(db_url)
    try:
        again = RateLimiter(reopened, limits, renewal_reserve=0)
        assert budget_left(reopened, ["o"], NOW) == {"o": 1.0}
        assert again.acquire([take("o")], NOW).granted
        assert not again.acquire([take("o")], NOW).granted
    finally:
        reopened.close()


def test_renewals_may_spend_the_reserve_new_domains_may_not(buckets: Store) -> None:
    # Burst 10 with a fifth reserved: new domains stop while 2 tokens are left.
    limiter = RateLimiter(buckets, {"orders": RateLimit(10, 100)}, renewal_reserve=0.2)
    new = [limiter.acquire([take("o")], NOW).granted for _ in range(9)]
    assert new == [True] * 8 + [False]
    refused = limiter.acquire([take("o")], NOW)
    # 3 are needed, one more: 10 s, but the ninth, refused above, has that turn.
    assert refused.wait_seconds == pytest.approx(20.0)

    assert limiter.acquire([take("o")], NOW, renewal=True).granted
    assert limiter.acquire([take("o")], NOW, renewal=True).granted
    refused = limiter.acquire([take("o")], NOW, renewal=True)
    assert refused.wait_seconds == pytest.approx(30.0)  # in line behind the two new domains
    # A new domain now needs three tokens (30 s), and the next turn is at 40 s.
    assert limiter.acquire([take("o")], NOW).wait_seconds == pytest.approx(40.0)


def test_refused_operations_get_turns_one_refill_apart(buckets: Store) -> None:
    clock = Clock()
    limiter = RateLimiter(buckets, {"orders": RateLimit(1, 10)}, clock, renewal_reserve=0)
    assert limiter.acquire([take("o")]).granted
    # A wave refused at once comes back one at a time, not all at the next token.
    waits = [limiter.acquire([take("o")]).wait_seconds for _ in range(5)]
    assert waits == pytest.approx([10.0, 20.0, 30.0, 40.0, 50.0])
    for turn in range(1, 6):
        clock.now = at(10 * turn)
        assert limiter.acquire([take("o")]).granted, f"turn {turn}"
    # Once the line has gone by, a refusal waits only for the bucket.
    clock.now = at(52)
    assert limiter.acquire([take("o")]).wait_seconds == pytest.approx(8.0)
    clock.now = at(1_000)
    assert limiter.acquire([take("o")]).granted


def test_a_tiny_burst_still_lets_new_domains_through(buckets: Store) -> None:
    limiter = RateLimiter(buckets, {"orders": RateLimit(1, 60)}, renewal_reserve=0.5)
    assert limiter.acquire([take("o")], NOW).granted


def test_checking_refunding_and_consuming(buckets: Store) -> None:
    limiter = RateLimiter(buckets, {"orders": RateLimit(2, 60)}, renewal_reserve=0)
    assert limiter.acquire([check("o")], NOW).granted
    assert budget_left(buckets, ["o"], NOW) == {"o": 2.0}

    limiter.refund([take("o")], NOW)
    assert budget_left(buckets, ["o"], NOW) == {"o": 2.0}  # never above the burst

    for _ in range(3):
        limiter.consume([take("o")], NOW)
    assert budget_left(buckets, ["o"], NOW) == {"o": 0.0}  # never below zero
    refused = limiter.acquire([check("o")], NOW)
    assert not refused.granted and refused.wait_seconds == pytest.approx(30.0)

    limiter.refund([take("o"), check("o", "other")], NOW)
    assert budget_left(buckets, ["o"], NOW) == {"o": 1.0}


def test_the_same_bucket_twice_takes_one_token(buckets: Store) -> None:
    limiter = RateLimiter(buckets, {"orders": RateLimit(2, 60)}, renewal_reserve=0)
    assert limiter.acquire([check("o"), take("o"), take("o")], NOW).granted
    assert budget_left(buckets, ["o"], NOW) == {"o": 1.0}


def test_a_clock_behind_does_not_refill_twice(buckets: Store) -> None:
    limiter = RateLimiter(buckets, {"orders": RateLimit(2, 20)}, renewal_reserve=0)
    assert limiter.acquire([take("o")], at(100)).granted
    # Another worker's clock is 50 s behind: it sees no refill, and does not move time back.
    assert limiter.acquire([take("o")], at(50)).granted
    assert not limiter.acquire([take("o")], at(100)).granted
    assert limiter.acquire([take("o")], at(110)).granted


def test_unconfigured_limits_are_let_through_without_the_database(store: Store) -> None:
    # `store` is migrated but has no rate_buckets table: nothing may touch it.
    limiter = RateLimiter(store, {})
    assert limiter.acquire([take("o")], NOW) == Decision(True)
    limiter.refund([take("o")], NOW)
    limiter.consume([take("o")], NOW)
    assert budget_left(store, []) == {}


def test_budget_left_needs_no_configuration(buckets: Store) -> None:
    limiter = RateLimiter(buckets, {"orders": RateLimit(4, 40)}, renewal_reserve=0)
    for _ in range(4):
        limiter.acquire([take("o")], NOW)
    assert budget_left(buckets, ["o", "never-used"], at(25)) == {"o": pytest.approx(2.5)}
    assert budget_left(buckets, ["o"], at(1000)) == {"o": 4.0}


def test_a_bad_reserve_is_refused(buckets: Store) -> None:
    with pytest.raises(ValueError, match="renewal_reserve"):
        RateLimiter(buckets, {}, renewal_reserve=1.0)


def test_two_workers_never_overspend(buckets: Store, db_url: str) -> None:
    """8 threads, 50 attempts each, through two limiters (two workers): exactly the burst."""
    second = Store(db_url)
    limits = {"orders": RateLimit(100, 3600)}
    limiters = [
        RateLimiter(buckets, limits, renewal_reserve=0),
        RateLimiter(second, limits, renewal_reserve=0),
    ]
    granted: list[int] = [0] * 8
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def spend(index: int) -> None:
        try:
            limiter = limiters[index % 2]
            start.wait()
            for _ in range(50):
                if limiter.acquire([take("shared")], NOW).granted:
                    granted[index] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        second.close()
    assert errors == []
    assert sum(granted) == 100
    assert budget_left(buckets, ["shared"], NOW) == {"shared": 0.0}


@pytest.mark.postgres
def test_overlapping_buckets_in_any_order_do_not_deadlock(postgres_url: str) -> None:
    stores = [Store(postgres_url) for _ in range(2)]
    stores[0].migrate()
    keys = [f"k{i}" for i in range(6)]
    limits = {"orders": RateLimit(10_000, 3600)}
    taken: Counter[str] = Counter()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def spend(seed: int) -> None:
        rng = random.Random(seed)
        limiter = RateLimiter(stores[seed % 2], limits, renewal_reserve=0)
        try:
            for _ in range(40):
                chosen = rng.sample(keys, rng.randint(2, 5))
                if limiter.acquire([take(k) for k in chosen], NOW).granted:
                    with lock:
                        taken.update(chosen)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spend, args=(i,)) for i in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        left = budget_left(stores[0], keys, NOW)
        assert {k: 10_000 - left[k] for k in keys} == {k: float(taken[k]) for k in keys}
    finally:
        for store in stores:
            store.close()
