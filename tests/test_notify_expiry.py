"""Expiry warnings: thresholds scaled to the certificate's lifetime, once each, then expired."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from linkcert.config import Settings
from linkcert.notify import Notifier, scan_expiring, watch_expiry
from linkcert.notify.expiry import crossed_threshold, thresholds
from linkcert.store import Domain, Store
from linkcert.store.models import Notification
from linkcert.testbed.waiting import wait_for_async
from tests.notify_support import T0, Clock, add_customer, give_certificate

DAY = timedelta(days=1)
SETTINGS = Settings(expiry_warning_days=7)


def test_thresholds_are_7_3_1_days_for_long_certificates() -> None:
    assert thresholds(T0, T0 + 90 * DAY, 7) == [7 * DAY, 3 * DAY, 1 * DAY]
    assert thresholds(T0, T0 + 45 * DAY, 2) == [2 * DAY, 2 * DAY * 3 / 7, 2 * DAY / 7]


def test_short_lifetimes_are_warned_within_a_quarter_of_their_life() -> None:
    six_days = timedelta(hours=160)
    first, second, third = thresholds(T0, T0 + six_days, 7)
    assert first == timedelta(hours=40)
    assert second < first and third < second
    # Renewal is due with half the life left (80 h): no warning then, one at 40 h.
    assert crossed_threshold(T0, T0 + six_days, T0 + timedelta(hours=80), 7) is None
    assert crossed_threshold(T0, T0 + six_days, T0 + timedelta(hours=121), 7) == 0


@pytest.mark.parametrize(
    ("left", "expected"),
    [(10 * DAY, None), (7 * DAY, 0), (4 * DAY, 0), (3 * DAY, 1), (DAY, 2), (-DAY, None)],
)
def test_the_most_urgent_threshold_passed(left: timedelta, expected: int | None) -> None:
    end = T0 + left
    assert crossed_threshold(end - 90 * DAY, end, T0, 7) == expected


def notifications(store: Store) -> list[tuple[str, str, int | None]]:
    with store.session() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id)).all()
        return [(n.kind, n.domain_name, n.data.get("threshold")) for n in rows]


def test_a_scan_warns_once_per_threshold_and_once_when_expired(store: Store) -> None:
    clock = Clock()
    notifier = Notifier.from_settings(SETTINGS, clock)

    soon = add_customer(store, "a", "links.soon.test", [])
    give_certificate(store, soon, T0 - 85 * DAY, T0 + 5 * DAY)
    later = add_customer(store, "b", "links.later.test", [])
    give_certificate(store, later, T0 - 60 * DAY, T0 + 30 * DAY)
    short = add_customer(store, "c", "links.short.test", [])
    give_certificate(store, short, T0 - timedelta(hours=88), T0 + timedelta(hours=72))
    gone = add_customer(store, "d", "links.gone.test", [])
    give_certificate(store, gone, T0 - 90 * DAY, T0 - timedelta(hours=1))
    dropped = add_customer(store, "e", "links.dropped.test", [])
    give_certificate(store, dropped, T0 - 88 * DAY, T0 + 2 * DAY)
    with store.session() as session:
        row = session.get(Domain, dropped)
        assert row is not None
        row.wanted = False  # no longer renewed on purpose: nothing to warn about

    assert scan_expiring(store, notifier, 7) == 2
    assert notifications(store) == [
        ("expired", "links.gone.test", None),
        ("expiring", "links.soon.test", 0),
    ]
    assert scan_expiring(store, notifier, 7) == 0  # the same scan again says nothing new

    clock.advance(days=3)  # 2 days left for links.soon.test; the short one has 0 h left
    assert scan_expiring(store, notifier, 7) == 2
    assert notifications(store)[2:] == [
        ("expired", "links.short.test", None),
        ("expiring", "links.soon.test", 1),
    ]


def test_a_renewed_domain_is_not_warned_about(store: Store) -> None:
    clock = Clock()
    domain_id = add_customer(store, "a", "links.alpha.test", [])
    give_certificate(store, domain_id, T0 - 85 * DAY, T0 + 5 * DAY, serial="01")
    give_certificate(store, domain_id, T0 - DAY, T0 + 89 * DAY, serial="02")
    assert scan_expiring(store, Notifier.from_settings(SETTINGS, clock), 7) == 0


async def test_the_watch_scans_until_stopped(store: Store) -> None:
    domain_id = add_customer(store, "a", "links.alpha.test", [])
    clock = Clock()
    give_certificate(store, domain_id, T0 - 85 * DAY, T0 + 5 * DAY)
    stop = asyncio.Event()
    watch = asyncio.create_task(watch_expiry(store, SETTINGS, stop, interval=0.05, clock=clock))
    try:
        await wait_for_async(lambda: notifications(store), "the expiry notification")
    finally:
        stop.set()
        await watch
    assert notifications(store) == [("expiring", "links.alpha.test", 0)]
