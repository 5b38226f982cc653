"""Origins without a network: address parsing, round robin, passive health and its backoff."""

from __future__ import annotations

import pytest

from linkcert.edge.upstream import Origin, PoolSettings, Upstreams
from linkcert.origins import parse_origin


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        ("https://Tracker.Internal", "https://tracker.internal:443"),
        ("http://tracker.internal/", "http://tracker.internal:80"),
        ("http://[2001:db8::5]:81", "http://[2001:db8::5]:81"),
    ],
)
def test_origin_addresses(text: str, label: str) -> None:
    assert parse_origin(text).label == label


@pytest.mark.parametrize(
    "text",
    [
        "tracker.internal:80",
        "ftp://x",
        "http://",
        "http://x:0",
        "http://x:99999",
        "http://u:p@x",
        "http://x/c",
        "http://x?q=1",
    ],
)
def test_bad_origin_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)origin|host|port|credentials|path"):
        parse_origin(text)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def origins(count: int, clock: Clock, **settings: float) -> tuple[Origin, ...]:
    made = []
    for number in range(count):
        origin = Origin(parse_origin(f"http://10.0.0.{number + 1}:80"), PoolSettings(**settings))  # type: ignore[arg-type]
        origin._clock = clock
        made.append(origin)
    return tuple(made)


def test_round_robin_skips_an_origin_left_out_and_takes_it_back() -> None:
    clock = Clock()
    a, b, c = origins(3, clock, max_fails=2, backoff_initial=1.0)
    upstreams = Upstreams((a, b, c))
    assert [upstreams.pick(clock.now) for _ in range(4)] == [a, b, c, a]
    b.failed("refused")
    assert b.healthy(clock.now)  # one failure is not yet two in a row
    b.failed("refused")
    assert not b.healthy(clock.now)
    assert [upstreams.pick(clock.now) for _ in range(4)] == [c, a, c, a]
    clock.now += 1.0
    assert b in {upstreams.pick(clock.now) for _ in range(3)}
    b.succeeded()
    assert b.consecutive_failures == 0


def test_the_backoff_doubles_each_time_an_origin_fails_again_up_to_the_limit() -> None:
    clock = Clock()
    (origin,) = origins(1, clock, max_fails=1, backoff_initial=1.0, backoff_max=5.0)
    waits = []
    for _ in range(5):
        origin.failed("reset")
        waits.append(origin.down_until - clock.now)
        clock.now = origin.down_until  # back in rotation, and failing again at once
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    origin.succeeded()
    origin.failed("reset")
    assert origin.down_until - clock.now == 1.0  # a good answer resets the backoff


def test_a_failure_while_left_out_does_not_extend_the_wait() -> None:
    clock = Clock()
    (origin,) = origins(1, clock, max_fails=1, backoff_initial=1.0)
    origin.failed("refused")
    until = origin.down_until
    clock.now += 0.5
    origin.failed("refused")
    assert origin.down_until == until


def test_with_every_origin_left_out_the_one_back_soonest_is_tried() -> None:
    clock = Clock()
    a, b = origins(2, clock, max_fails=1, backoff_initial=1.0)
    a.failed("refused")
    clock.now += 0.5
    b.failed("refused")
    upstreams = Upstreams((a, b))
    assert upstreams.pick(clock.now) is a
    assert upstreams.pick(clock.now, avoid=a) is b
    assert Upstreams((a,)).pick(clock.now, avoid=a) is None
