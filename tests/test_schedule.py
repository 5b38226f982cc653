import random
from datetime import UTC, datetime, timedelta

from linkcert.renewal import renewal_time
from linkcert.states import FailureClass
from linkcert.worker.schedule import dns_recheck_delay, retry_delay


def test_dns_rechecks_slow_down_and_cap() -> None:
    delays = [dns_recheck_delay(n).total_seconds() for n in range(1, 20)]
    assert delays == sorted(delays)
    assert delays[0] == 5 and delays[-1] == 3600


def test_ca_backoff_follows_guidance_with_jitter() -> None:
    rng = random.Random(1)
    got = [
        retry_delay(FailureClass.CA_UNAVAILABLE, n, rng=rng).total_seconds()
        for n in (1, 2, 3, 4, 9)
    ]
    for value, base in zip(got, (60, 600, 6000, 86400, 86400), strict=True):
        assert base <= value <= base * 1.1


def test_retry_after_is_a_floor() -> None:
    delay = retry_delay(FailureClass.CA_UNAVAILABLE, 1, retry_after=7200, rng=random.Random(2))
    assert delay.total_seconds() == 7200
    # Waiting for a rate-limit budget goes when the budget frees up, not after a back-off.
    budget = retry_delay(FailureClass.RATE_LIMITED, 5, retry_after=30, rng=random.Random(2))
    assert 30 <= budget.total_seconds() <= 31
    # Turns a second apart stay in order, however long the wait.
    rng = random.Random(4)
    turns = [retry_delay(FailureClass.RATE_LIMITED, 1, 900 + k, rng=rng) for k in range(0, 20, 2)]
    assert turns == sorted(turns)
    assert 0.5 <= retry_delay(FailureClass.RATE_LIMITED, 1, 0.5, rng=rng).total_seconds() <= 0.55


def test_renewal_uses_the_certificates_own_lifetime() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    rng = random.Random(3)
    for days in (90, 45, 6.67):
        end = start + timedelta(days=days)
        when = renewal_time(start, end, rng)
        fraction = 0.5 if days < 10 else 1 / 3
        latest = end - (end - start) * fraction
        assert latest - (end - start) * 0.05 <= when <= latest


def test_renewals_of_a_batch_are_spread() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=90)
    times = {renewal_time(start, end) for _ in range(100)}
    assert len(times) > 90
    assert max(times) - min(times) > timedelta(hours=24)
