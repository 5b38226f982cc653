"""Prometheus metrics: what the worker, the edge and the store say about the installation.

Three sources, one exposition:
- counters this process increments (orders, failures, notifications, deliveries) and gauges
  other parts set (the CA rate-limit budget): `linkcert.counters`;
- the edge's running totals, read at scrape time from its `EdgeCounters` (`track_edge`);
- installation-wide facts from a summary of the store: a few grouped queries run in the
  background at most once a minute (`metrics_store_refresh_seconds`), never by a scrape
  itself (see StoreCollector), so scraping costs no query at any fleet size. These are the
  same in every process: aggregate them with max(), not sum().

No series is per domain: 100,000 domains must not make 100,000 series. Expiry is a histogram
of days left plus the single soonest expiry.

    app.include_router(metrics_router(store))          # GET /metrics on the API
    listener = serve_metrics("127.0.0.1:9464", store)   # or a listener of its own
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import case, extract, func, or_, select
from sqlalchemy.orm import Session

from linkcert.counters import (
    CA_FAILOVERS,
    CA_ORDERS,
    CERTIFICATES_ISSUED,
    CERTIFICATES_PRUNED,
    CLICKS_PRUNED,
    DELIVERY_ATTEMPTS,
    ISSUANCE_FAILURES,
    NOTIFICATIONS,
    ORDERS_STARTED,
    RATE_BUDGET,
    STORE_UNAVAILABLE,
)
from linkcert.hostport import parse_host_port
from linkcert.states import CertState, DnsState
from linkcert.store import Store
from linkcert.store.models import Certificate, Delivery, Domain, utcnow

if TYPE_CHECKING:
    from linkcert.edge.counters import EdgeCounters
    from linkcert.edge.upstream import OriginRegistry

log = logging.getLogger("linkcert.metrics")

# --- the edge's totals --------------------------------------------------------------------


class EdgeCollector(Collector):
    """Reads the edge's plain-integer totals at scrape time; incrementing them stays free."""

    def __init__(self) -> None:
        self.counters: EdgeCounters | None = None

    def collect(self) -> Iterable[Metric]:
        counters = self.counters
        if counters is None:
            return
        yield _counter(
            "linkcert_edge_connections_accepted",
            "TCP connections accepted.",
            counters.connections_accepted,
        )
        yield _by_reason(
            "linkcert_edge_connections_refused",
            "Connections closed as soon as accepted, by the bound they met "
            "(process_cap, address_cap).",
            counters.connections_refused,
        )
        yield _by_reason(
            "linkcert_edge_connections_closed",
            "Connections the edge closed on its own, by reason (first_byte_timeout, "
            "handshake_timeout, idle_timeout, write_stalled; process_cap and address_cap: the "
            "oldest idle connection closed to make room for a new one).",
            counters.connections_closed,
        )
        yield _counter(
            "linkcert_edge_tls_handshakes",
            "TLS handshakes completed.",
            counters.handshakes_completed,
        )
        failures = CounterMetricFamily(
            "linkcert_edge_tls_handshake_failures",
            "TLS handshakes that failed, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(counters.handshakes_failed.items()):
            failures.add_metric([reason], count)
        yield failures
        yield _counter("linkcert_edge_requests", "HTTP requests read.", counters.requests)
        responses = CounterMetricFamily(
            "linkcert_edge_responses", "HTTP responses sent, by status.", labels=["status"]
        )
        for status, count in sorted(counters.responses_by_status.items()):
            responses.add_metric([str(status)], count)
        yield responses
        clicks = CounterMetricFamily(
            "linkcert_edge_clicks", "Clicks and opens recorded.", labels=["kind"]
        )
        clicks.add_metric(["click"], counters.clicks_recorded)
        clicks.add_metric(["open"], counters.opens_recorded)
        yield clicks
        yield _counter(
            "linkcert_edge_machine_events",
            "Clicks and opens recorded with a machine reason (HEAD, a scanner, too soon).",
            counters.machine_recorded,
        )
        yield _counter(
            "linkcert_edge_clicks_dropped",
            "Clicks that could not be recorded.",
            counters.clicks_dropped,
        )
        yield _counter(
            "linkcert_edge_click_repeats_not_recorded",
            "Clicks and opens answered but not recorded: one client address repeating one "
            "link past click_repeat_limit within its window.",
            counters.click_repeats_not_recorded,
        )
        yield _counter(
            "linkcert_edge_invalid_tokens",
            "Tracking links with a bad token.",
            counters.invalid_tokens,
        )
        yield _counter(
            "linkcert_edge_unserved_hosts",
            "Tracking links asked on a name the edge does not serve (not proven, deleted or "
            "released).",
            counters.unserved_hosts,
        )
        yield _counter(
            "linkcert_edge_retired_key_tokens",
            "Tracking links refused because their key id is no longer in tracking_keys.",
            counters.retired_key_tokens,
        )
        yield _counter(
            "linkcert_edge_challenges_served",
            "ACME HTTP-01 answers served.",
            counters.challenges_served,
        )
        yield _counter(
            "linkcert_edge_challenges_unknown",
            "ACME HTTP-01 requests refused from memory: no pending order for the name.",
            counters.challenges_unknown,
        )
        yield _counter(
            "linkcert_edge_challenge_store_reads",
            "Reads of a pending name's HTTP-01 tokens that memory did not hold yet.",
            counters.challenge_store_reads,
        )
        yield _counter(
            "linkcert_edge_challenge_lookup_failures",
            "ACME HTTP-01 answers that could not be looked up.",
            counters.challenge_lookup_failures,
        )
        yield _counter(
            "linkcert_edge_bad_requests", "Malformed HTTP requests.", counters.bad_requests
        )
        yield _counter(
            "linkcert_edge_request_timeouts", "Requests that timed out.", counters.request_timeouts
        )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


class OriginCollector(Collector):
    """Proxy mode: per-origin figures of this edge process, read at scrape time."""

    def __init__(self) -> None:
        self.registry: OriginRegistry | None = None

    def collect(self) -> Iterable[Metric]:
        registry = self.registry
        if registry is None:
            return
        from linkcert.edge.upstream import LATENCY_BUCKETS

        origins = registry.origins
        requests = CounterMetricFamily(
            "linkcert_edge_origin_requests",
            "Requests relayed to each origin (retries included).",
            labels=["origin"],
        )
        responses = CounterMetricFamily(
            "linkcert_edge_origin_responses",
            "Responses by origin and status class; edge_502/edge_504 are the edge's own pages "
            "when the origin did not answer.",
            labels=["origin", "class"],
        )
        failures = CounterMetricFamily(
            "linkcert_edge_origin_failures",
            "Failed attempts by origin and reason (refused, reset, timeout, connect_timeout, "
            "tls, bad_response, 5xx; busy and stale_connection do not count against health).",
            labels=["origin", "reason"],
        )
        retries = CounterMetricFamily(
            "linkcert_edge_origin_retries",
            "Requests tried again on another origin after this one failed.",
            labels=["origin"],
        )
        latency = HistogramMetricFamily(
            "linkcert_edge_origin_latency_seconds",
            "Time from sending a request to the origin to its response's head.",
            labels=["origin"],
        )
        open_connections = GaugeMetricFamily(
            "linkcert_edge_origin_connections",
            "Connections to each origin, open (idle included) and idle in the pool.",
            labels=["origin", "state"],
        )
        healthy = GaugeMetricFamily(
            "linkcert_edge_origin_healthy",
            "1 when the origin is in rotation, 0 while it is left out after failures.",
            labels=["origin"],
        )
        now = time.monotonic()
        for origin in origins:
            label = origin.label
            stats = origin.stats
            requests.add_metric([label], stats.requests)
            for kind, count in sorted(stats.responses_by_class.items()):
                responses.add_metric([label, kind], count)
            for reason, count in sorted(stats.failures.items()):
                failures.add_metric([label, reason], count)
            retries.add_metric([label], stats.retries)
            cumulative = 0
            buckets = []
            for bound, count in zip(
                (*(str(b) for b in LATENCY_BUCKETS), "+Inf"), stats.latency_counts, strict=True
            ):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([label], buckets, stats.latency_sum)
            open_connections.add_metric([label, "open"], origin.open)
            open_connections.add_metric([label, "idle"], origin.idle)
            healthy.add_metric([label], 1 if origin.healthy(now) else 0)
        yield from (requests, responses, failures, retries, latency, open_connections, healthy)


def _by_reason(name: str, documentation: str, counts: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, count in sorted(counts.items()):
        family.add_metric([reason], count)
    return family


# Process-wide: one edge and one set of counters per process, whatever serves /metrics.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
_EDGE = EdgeCollector()
_ORIGINS = OriginCollector()
for _collector in (
    ORDERS_STARTED,
    CA_ORDERS,
    CA_FAILOVERS,
    CERTIFICATES_ISSUED,
    ISSUANCE_FAILURES,
    RATE_BUDGET,
    NOTIFICATIONS,
    DELIVERY_ATTEMPTS,
    STORE_UNAVAILABLE,
    CLICKS_PRUNED,
    CERTIFICATES_PRUNED,
    _EDGE,
    _ORIGINS,
):
    PROCESS_REGISTRY.register(_collector)
ProcessCollector(registry=PROCESS_REGISTRY)
PlatformCollector(registry=PROCESS_REGISTRY)


def track_edge(counters: EdgeCounters | None) -> None:
    """Expose this process's edge totals (None stops)."""
    _EDGE.counters = counters


def track_origins(registry: OriginRegistry | None) -> None:
    """Expose this process's per-origin figures in proxy mode (None stops)."""
    _ORIGINS.registry = registry


# --- what the store says ------------------------------------------------------------------

# Upper bounds of the days-to-expiry histogram; expired certificates fall in le="0".
EXPIRY_BUCKET_DAYS = (0, 1, 3, 7, 14, 21, 30, 45, 60, 90)


@dataclass(frozen=True)
class StoreSnapshot:
    taken_at: datetime
    states: dict[tuple[str, str], int] = field(default_factory=dict)
    not_wanted: int = 0
    expiry_counts: list[int] = field(default_factory=list)  # per bucket, last is +Inf
    expiry_seconds_sum: float = 0.0
    soonest_expiry: datetime | None = None
    due_domains: int = 0
    oldest_due: datetime | None = None
    pending_deliveries: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)


def _read_expiry(session: Session, now: datetime) -> tuple[list[int], float, datetime | None]:
    """The days-to-expiry histogram of kept domains' current certificates: counts per
    bucket, the sum of seconds left, and the soonest expiry."""
    bounds = [now + timedelta(days=days) for days in EXPIRY_BUCKET_DAYS]
    bucket = case(
        *[(Certificate.not_after <= bound, index) for index, bound in enumerate(bounds)],
        else_=len(bounds),
    )
    # Bucketed in a sub-select and grouped outside, so that PostgreSQL groups by a column
    # rather than by an expression whose bound parameters it cannot match.
    current = (
        select(bucket.label("bucket"), Certificate.not_after.label("not_after"))
        .select_from(Domain)
        .join(Certificate, Certificate.id == Domain.current_certificate_id)
        .where(Domain.wanted.is_(True))
        .subquery()
    )
    expiry_counts = [0] * (len(bounds) + 1)
    epoch_sum = 0.0
    soonest: datetime | None = None
    for index, count, epochs, earliest in session.execute(
        select(
            current.c.bucket,
            func.count(),
            func.sum(extract("epoch", current.c.not_after)),
            func.min(current.c.not_after),
        ).group_by(current.c.bucket)
    ):
        expiry_counts[int(index)] = int(count)
        epoch_sum += float(epochs or 0)
        if earliest is not None and (soonest is None or earliest < soonest):
            soonest = earliest
    total = sum(expiry_counts)
    seconds_sum = epoch_sum - total * now.timestamp()

    return expiry_counts, seconds_sum, soonest


# The expiry histogram reads every current certificate's end date, the costliest part of the
# summary (about 4 s at a million domains): it is read again only every this many refreshes.
EXPIRY_EVERY = 10


def read_snapshot(
    store: Store, now: datetime, previous: StoreSnapshot | None = None
) -> StoreSnapshot:
    """The installation-wide numbers, in a handful of grouped queries (no row per domain).

    With `previous`, the expiry histogram is carried over from it (moved to `now`) instead of
    being read again.
    """
    with store.session() as session:
        states: dict[tuple[str, str], int] = {
            (str(dns), str(cert)): 0 for dns in DnsState for cert in CertState
        }
        for dns_state, cert_state, count in session.execute(
            select(Domain.dns_state, Domain.cert_state, func.count())
            .where(Domain.wanted.is_(True))
            .group_by(Domain.dns_state, Domain.cert_state)
        ):
            states[(dns_state, cert_state)] = int(count)
        not_wanted = int(session.scalar(select(func.count()).where(Domain.wanted.is_(False))) or 0)

        if previous is not None:
            expiry_counts = list(previous.expiry_counts)
            total = sum(expiry_counts)
            elapsed = (now - previous.taken_at).total_seconds()
            seconds_sum = previous.expiry_seconds_sum - total * elapsed
            soonest = previous.soonest_expiry
        else:
            expiry_counts, seconds_sum, soonest = _read_expiry(session, now)
        free = or_(Domain.lease_until.is_(None), Domain.lease_until < now)
        due_count, oldest_due = session.execute(
            select(func.count(), func.min(Domain.next_attempt_at)).where(
                Domain.next_attempt_at <= now, free
            )
        ).one()

        pending: dict[str, tuple[int, datetime | None]] = {
            channel: (int(count), oldest)
            for channel, count, oldest in session.execute(
                select(Delivery.channel, func.count(), func.min(Delivery.created_at))
                .where(Delivery.status == "pending")
                .group_by(Delivery.channel)
            )
        }
    return StoreSnapshot(
        taken_at=now,
        states=states,
        not_wanted=not_wanted,
        expiry_counts=expiry_counts,
        expiry_seconds_sum=seconds_sum,
        soonest_expiry=soonest,
        due_domains=int(due_count or 0),
        oldest_due=oldest_due,
        pending_deliveries=pending,
    )


# How old the store's summary may get before a scrape asks for a new one (in the background).
DEFAULT_REFRESH_SECONDS = 60.0


class StoreCollector(Collector):
    """Installation-wide gauges from a summary of the store, refreshed in the background.

    A scrape never reads the store itself, except the very first one (there is nothing to
    show yet). Each scrape answers from the summary in memory; one that finds it older than
    `refresh_seconds` starts a refresh in a thread of its own and still answers at once with
    the summary it has. So however often Prometheus (or several of them) scrapes, the grouped
    queries over the domains run at most once per `refresh_seconds` per process, and no
    scrape waits for them. `linkcert_store_summary_age_seconds` says how old the figures are.
    """

    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float = DEFAULT_REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
        background: bool = True,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic
        self.clock = clock
        self.background = background
        self._lock = threading.Lock()
        self._cached: tuple[float, StoreSnapshot | None] | None = None
        self._refreshing: threading.Thread | None = None
        self._reads = 0

    def _read(self) -> StoreSnapshot | None:
        cached = self._cached[1] if self._cached is not None else None
        self._reads += 1
        carry = cached is not None and self._reads % EXPIRY_EVERY != 1
        try:
            return read_snapshot(self.store, self.clock(), cached if carry else None)
        except Exception:
            log.exception("reading metrics from the store failed")
            return None

    def _refresh(self) -> None:
        snapshot = self._read()
        with self._lock:
            self._cached = (self.monotonic(), snapshot)
            self._refreshing = None

    def snapshot(self) -> StoreSnapshot | None:
        """The summary in memory; None if the store could not be read (the scrape still
        answers, with linkcert_store_up 0). A stale one is refreshed in the background."""
        with self._lock:
            cached = self._cached
            if cached is not None and self.monotonic() - cached[0] < self.cache_seconds:
                return cached[1]
            if cached is not None and self.background:
                if self._refreshing is None:
                    self._refreshing = threading.Thread(
                        target=self._refresh, name="linkcert-metrics-summary", daemon=True
                    )
                    self._refreshing.start()
                return cached[1]
            # The first scrape (or no background refresh): read now, the others wait for it.
            snapshot = self._read()
            self._cached = (self.monotonic(), snapshot)
            return snapshot

    def wait_for_refresh(self, timeout: float | None = None) -> None:
        """Wait for a background refresh under way, if any (for tests and benchmarks)."""
        thread = self._refreshing
        if thread is not None:
            thread.join(timeout)

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot()
        yield GaugeMetricFamily(
            "linkcert_store_up",
            "1 if the last read of the store for metrics worked.",
            value=0 if snapshot is None else 1,
        )
        if snapshot is None:
            return
        now = self.clock()
        yield GaugeMetricFamily(
            "linkcert_store_summary_age_seconds",
            "How old the store's figures below are: they are read in the background, at most "
            "once per metrics_store_refresh_seconds.",
            value=max(0.0, (now - snapshot.taken_at).total_seconds()),
        )
        yield from _store_families(snapshot, now)


def _store_families(snapshot: StoreSnapshot, now: datetime) -> Iterable[Metric]:
    domains = GaugeMetricFamily(
        "linkcert_domains",
        "Domains linkcert keeps secured, by DNS state and certificate state.",
        labels=["dns_state", "cert_state"],
    )
    for (dns_state, cert_state), count in sorted(snapshot.states.items()):
        domains.add_metric([dns_state, cert_state], count)
    yield domains
    yield GaugeMetricFamily(
        "linkcert_domains_not_wanted",
        "Domains no longer renewed (detached or replaced) that still serve until expiry.",
        value=snapshot.not_wanted,
    )

    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for index, count in enumerate(snapshot.expiry_counts):
        cumulative += count
        bound = str(float(EXPIRY_BUCKET_DAYS[index])) if index < len(EXPIRY_BUCKET_DAYS) else "+Inf"
        buckets.append((bound, cumulative))
    yield HistogramMetricFamily(
        "linkcert_certificate_days_to_expiry",
        "Current certificates of kept domains by days left until they expire.",
        buckets=buckets,
        sum_value=snapshot.expiry_seconds_sum / 86400,
    )
    if snapshot.soonest_expiry is not None:
        yield GaugeMetricFamily(
            "linkcert_certificate_soonest_expiry_timestamp_seconds",
            "When the first current certificate of a kept domain expires (Unix time).",
            value=snapshot.soonest_expiry.timestamp(),
        )

    yield GaugeMetricFamily(
        "linkcert_worker_due_domains",
        "Domains due for the worker and not being worked on.",
        value=snapshot.due_domains,
    )
    lag = (now - snapshot.oldest_due).total_seconds() if snapshot.oldest_due else 0.0
    yield GaugeMetricFamily(
        "linkcert_worker_queue_lag_seconds",
        "How long the longest-waiting due domain has been due (0 when none is).",
        value=max(0.0, lag),
    )

    pending = GaugeMetricFamily(
        "linkcert_deliveries_pending",
        "Alert deliveries not yet delivered nor given up.",
        labels=["channel"],
    )
    oldest = GaugeMetricFamily(
        "linkcert_deliveries_oldest_pending_age_seconds",
        "Age of the oldest alert delivery still pending.",
        labels=["channel"],
    )
    for channel in sorted(set(snapshot.pending_deliveries) | {"email", "webhook"}):
        count, created = snapshot.pending_deliveries.get(channel, (0, None))
        pending.add_metric([channel], count)
        oldest.add_metric([channel], max(0.0, (now - created).total_seconds()) if created else 0)
    yield pending
    yield oldest


# --- exposition ---------------------------------------------------------------------------


class _ProcessMetrics(Collector):
    def collect(self) -> Iterable[Metric]:
        yield from PROCESS_REGISTRY.collect()


def registry_for(
    store: Store | None, *, cache_seconds: float = DEFAULT_REFRESH_SECONDS
) -> CollectorRegistry:
    """A registry exposing this process's metrics and, given a store, the store's (refreshed
    at most once per `cache_seconds`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    if store is not None:
        registry.register(StoreCollector(store, cache_seconds=cache_seconds))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def metrics_router(
    store: Store | None, refresh_seconds: float = DEFAULT_REFRESH_SECONDS
) -> APIRouter:
    """GET /metrics, without authentication (like any Prometheus target): it holds counts
    only, never a domain name or an account."""
    registry = registry_for(store, cache_seconds=refresh_seconds)
    router = APIRouter()

    # A plain function, so FastAPI runs it in its thread pool: the store queries block.
    @router.get("/metrics", include_in_schema=False)
    def get_metrics() -> Response:
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)

    return router


class MetricsListener:
    """A /metrics HTTP listener of its own (prometheus_client's, in a daemon thread)."""

    def __init__(
        self, listen: str, store: Store | None, refresh_seconds: float = DEFAULT_REFRESH_SECONDS
    ) -> None:
        host, port = parse_host_port(listen)
        registry = registry_for(store, cache_seconds=refresh_seconds)
        self._server, self._thread = start_http_server(port, host, registry)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(
    listen: str, store: Store | None, refresh_seconds: float = DEFAULT_REFRESH_SECONDS
) -> MetricsListener:
    return MetricsListener(listen, store, refresh_seconds)
