"""/metrics: it parses as Prometheus text and shows the store's counts and the process's."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from linkcert import counters, metrics
from linkcert.api import create_app
from linkcert.config import Settings
from linkcert.edge.counters import EdgeCounters
from linkcert.states import CertState, DnsState
from linkcert.store import Domain, Store, utcnow
from linkcert.testbed.statements import recorded_statements
from tests.notify_support import add_customer, give_certificate

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SETTINGS = Settings(allow_test_domains=True)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(store: Store) -> Samples:
    app = create_app(store, SETTINGS, rate_limit=None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        response = await client.get("/metrics")  # no token: Prometheus brings none
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def installation(store: Store) -> None:
    """Four secured domains expiring in 0.5, 5, 40 and 80 days, one moved, one waiting."""
    now = utcnow()
    for number, days_left in enumerate((0.5, 5, 40, 80)):
        domain_id = add_customer(store, f"s{number}", f"links.s{number}.test", [])
        left = timedelta(days=days_left)
        give_certificate(store, domain_id, now + left - timedelta(days=90), now + left)
    moved = add_customer(store, "m", "links.moved.test", [])
    waiting = add_customer(store, "w", "links.waiting.test", [])
    detached = add_customer(store, "x", "links.detached.test", [])
    with store.session() as session:
        for domain in session.scalars(select(Domain)).all():
            domain.next_attempt_at = now + timedelta(hours=6)
        row = session.get(Domain, moved)
        assert row is not None
        row.dns_state = DnsState.MOVED
        row = session.get(Domain, waiting)
        assert row is not None
        row.next_attempt_at = now - timedelta(minutes=2)  # due and nobody has taken it
        row = session.get(Domain, detached)
        assert row is not None
        row.wanted = False


async def test_metrics_show_domain_states_expiry_and_queue_lag(store: Store) -> None:
    installation(store)
    samples = await scrape(store)

    assert value(samples, "linkcert_store_up") == 1
    assert value(samples, "linkcert_domains", dns_state="ok", cert_state="active") == 4
    assert value(samples, "linkcert_domains", dns_state="moved", cert_state="none") == 1
    assert value(samples, "linkcert_domains", dns_state="pending", cert_state="none") == 1
    # Every combination is there, with 0 when empty, so alerts see a 0 and not a gap.
    assert value(samples, "linkcert_domains", dns_state="caa_blocked", cert_state="expired") == 0
    assert len([k for k in samples if k[0] == "linkcert_domains"]) == len(DnsState) * len(CertState)
    assert value(samples, "linkcert_domains_not_wanted") == 1

    def bucket(le: str) -> float:
        return value(samples, "linkcert_certificate_days_to_expiry_bucket", le=le)

    assert (bucket("0.0"), bucket("1.0"), bucket("3.0"), bucket("7.0")) == (0, 1, 1, 2)
    assert (bucket("30.0"), bucket("45.0"), bucket("60.0"), bucket("90.0")) == (2, 3, 3, 4)
    assert bucket("+Inf") == value(samples, "linkcert_certificate_days_to_expiry_count") == 4
    assert value(samples, "linkcert_certificate_days_to_expiry_sum") == pytest.approx(
        125.5, abs=0.1
    )
    soonest = value(samples, "linkcert_certificate_soonest_expiry_timestamp_seconds")
    assert soonest == pytest.approx((utcnow() + timedelta(days=0.5)).timestamp(), abs=600)

    assert value(samples, "linkcert_worker_due_domains") == 1
    assert 120 <= value(samples, "linkcert_worker_queue_lag_seconds") < 3600
    assert value(samples, "linkcert_deliveries_pending", channel="webhook") == 0


async def test_counters_and_gauges_set_by_other_parts_appear(store: Store) -> None:
    before = await scrape(store)

    def delta(after: Samples, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after[key] - before.get(key, 0.0)

    counters.count_order_started(renewal=False)
    counters.count_order_started(renewal=True)
    counters.count_order_started(renewal=True)
    counters.count_certificate_issued(renewal=True)
    counters.count_issuance_failure("rate_limited")
    counters.count_issuance_failure("something new")  # unknown classes share one series
    counters.set_rate_budget("new_orders", 287)
    edge = EdgeCounters(handshakes_completed=5, requests=7, clicks_recorded=3)
    edge.handshakes_failed["unknown_name"] += 2
    edge.responses_by_status[302] += 6
    metrics.track_edge(edge)
    try:
        after = await scrape(store)
    finally:
        metrics.track_edge(None)

    assert delta(after, "linkcert_orders_started_total", kind="new") == 1
    assert delta(after, "linkcert_orders_started_total", kind="renewal") == 2
    assert delta(after, "linkcert_certificates_issued_total", kind="renewal") == 1
    assert delta(after, "linkcert_issuance_failures_total", failure_class="rate_limited") == 1
    assert delta(after, "linkcert_issuance_failures_total", failure_class="other") == 1
    assert value(after, "linkcert_acme_rate_limit_tokens", bucket="new_orders") == 287
    assert value(after, "linkcert_edge_tls_handshakes_total") == 5
    assert value(after, "linkcert_edge_tls_handshake_failures_total", reason="unknown_name") == 2
    assert value(after, "linkcert_edge_requests_total") == 7
    assert value(after, "linkcert_edge_responses_total", status="302") == 6
    assert value(after, "linkcert_edge_clicks_total", kind="click") == 3

    gone = await scrape(store)
    assert not any(name.startswith("linkcert_edge_") for name, _ in gone)


def test_scrapes_answer_from_the_summary_without_a_statement(store: Store) -> None:
    """Only the first scrape reads the store; later ones answer from memory, and one that finds
    the summary stale has it read again in the background, not itself."""
    seconds = [100.0]
    collector = metrics.StoreCollector(store, cache_seconds=60, monotonic=lambda: seconds[0])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    add_customer(store, "a", "links.a.test", [])
    with recorded_statements(store) as first:
        samples = parse(metrics.render(registry).decode())
    assert first, "the first scrape reads the store"
    assert value(samples, "linkcert_domains", dns_state="pending", cert_state="none") == 1

    add_customer(store, "b", "links.b.test", [])
    for _ in range(20):
        seconds[0] += 2
        with recorded_statements(store) as during:
            samples = parse(metrics.render(registry).decode())
        assert during == []
        assert value(samples, "linkcert_domains", dns_state="pending", cert_state="none") == 1
    # Past the refresh interval: this scrape still runs no statement and shows what it has...
    seconds[0] += 30
    with recorded_statements(store) as stale:
        samples = parse(metrics.render(registry).decode())
    assert stale == []
    assert value(samples, "linkcert_domains", dns_state="pending", cert_state="none") == 1
    # ...while the summary is read again beside it, once, for the scrapes after it.
    collector.wait_for_refresh(timeout=30)
    with recorded_statements(store) as after:
        samples = parse(metrics.render(registry).decode())
    assert after == []
    assert value(samples, "linkcert_domains", dns_state="pending", cert_state="none") == 2
    assert value(samples, "linkcert_store_summary_age_seconds") >= 0


def test_a_refresh_reads_the_store_in_a_few_grouped_statements(store: Store) -> None:
    """However many domains there are: the number of statements of one summary is fixed."""
    counts = []
    for batch in range(2):
        for i in range(5 * (batch + 1)):
            add_customer(store, f"c{batch}{i}", f"links.c{batch}-{i}.test", [])
        with recorded_statements(store) as seen:
            metrics.read_snapshot(store, utcnow())
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 6, counts


def test_the_expiry_histogram_is_carried_between_its_reads(store: Store) -> None:
    """Most refreshes leave the certificates alone and move the last histogram to now."""
    installation(store)
    now = utcnow()
    full = metrics.read_snapshot(store, now)
    later = now + timedelta(minutes=1)
    with recorded_statements(store) as seen:
        carried = metrics.read_snapshot(store, later, full)
    assert not [s for s in seen if "certificates" in s.sql], seen
    assert carried.expiry_counts == full.expiry_counts
    assert carried.soonest_expiry == full.soonest_expiry
    total = sum(full.expiry_counts)
    assert carried.expiry_seconds_sum == pytest.approx(full.expiry_seconds_sum - total * 60)
    fresh = metrics.read_snapshot(store, later)
    assert fresh.expiry_seconds_sum == pytest.approx(carried.expiry_seconds_sum, rel=1e-6)

    seconds = [0.0]
    collector = metrics.StoreCollector(store, cache_seconds=1, monotonic=lambda: seconds[0])
    reads = []
    for _ in range(2 * metrics.EXPIRY_EVERY):
        with recorded_statements(store) as seen:
            collector._refresh()
        reads.append(any("certificates" in s.sql for s in seen))
    assert reads.count(True) == 2 and reads[0], reads


def test_an_unreadable_store_still_answers_with_store_up_0(tmp_path: Path) -> None:
    unmigrated = Store(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        samples = parse(metrics.render(metrics.registry_for(unmigrated)).decode())
    finally:
        unmigrated.close()
    assert value(samples, "linkcert_store_up") == 0
    assert not any(name == "linkcert_domains" for name, _ in samples)


def test_metrics_on_a_listener_of_their_own(store: Store) -> None:
    add_customer(store, "a", "links.a.test", [])
    listener = metrics.serve_metrics("127.0.0.1:0", store)
    try:
        response = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", trust_env=False)
    finally:
        listener.close()
    samples = parse(response.text)
    assert value(samples, "linkcert_domains", dns_state="pending", cert_state="none") == 1
