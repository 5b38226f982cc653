"""What this process counts: orders, certificates, failures, notifications, deliveries.

The worker, the notifier and the API increment these through the functions below; they are
plain Prometheus counters and gauges and need nothing else. Serving them (with the edge's
totals and the store's facts) over HTTP is `linkcert.metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from linkcert.states import FailureClass

ORDERS_STARTED = Counter(
    "linkcert_orders_started",
    "ACME orders placed, by kind (new certificate or renewal).",
    ["kind"],
    registry=None,
)
CA_ORDERS = Counter(
    "linkcert_ca_orders",
    "ACME orders placed, by CA (its name in acme_cas).",
    ["ca"],
    registry=None,
)
CA_FAILOVERS = Counter(
    "linkcert_ca_failovers",
    "Orders moved to the next CA because the one before was down or limiting, by CA left "
    "and CA taken.",
    ["from_ca", "to_ca"],
    registry=None,
)
CERTIFICATES_ISSUED = Counter(
    "linkcert_certificates_issued",
    "Certificates obtained and stored, by kind (new certificate or renewal).",
    ["kind"],
    registry=None,
)
ISSUANCE_FAILURES = Counter(
    "linkcert_issuance_failures",
    "Failed attempts to obtain a certificate, by failure class.",
    ["failure_class"],
    registry=None,
)
RATE_BUDGET = Gauge(
    "linkcert_acme_rate_limit_tokens",
    "Tokens left in each CA rate-limit bucket, as the order limiter last saw them.",
    ["bucket"],
    registry=None,
)
NOTIFICATIONS = Counter(
    "linkcert_notifications",
    "Notifications recorded, by kind (repeats suppressed by their window are not counted).",
    ["kind"],
    registry=None,
)
DELIVERY_ATTEMPTS = Counter(
    "linkcert_delivery_attempts",
    "Email and webhook delivery attempts, by channel and outcome "
    "(delivered, failed; given_up counts failures that ended the retries).",
    ["channel", "outcome"],
    registry=None,
)
STORE_UNAVAILABLE = Counter(
    "linkcert_store_unavailable",
    "Requests answered 503 because the database could not do its part, by code "
    "(read_only, disk_full, locked, unreachable).",
    ["code"],
    registry=None,
)

CLICKS_PRUNED = Counter(
    "linkcert_clicks_pruned",
    "Clicks deleted by the workers once past click_retention_days.",
    registry=None,
)

CERTIFICATES_PRUNED = Counter(
    "linkcert_certificates_pruned",
    "Certificates deleted by the workers: served by no domain and expired more than "
    "certificate_retention_days ago.",
    registry=None,
)

_FAILURE_CLASSES = frozenset(item.value for item in FailureClass)


def _kind(renewal: bool) -> str:
    return "renewal" if renewal else "new"


def count_order_started(*, renewal: bool) -> None:
    """Call when an ACME order is placed (not when a stored one is resumed)."""
    ORDERS_STARTED.labels(_kind(renewal)).inc()


def count_ca_order(ca: str) -> None:
    """Call when an ACME order is placed at the CA named `ca`."""
    CA_ORDERS.labels(ca).inc()


def count_ca_failover(from_ca: str, to_ca: str) -> None:
    """Call when an order moves from one CA to the next."""
    CA_FAILOVERS.labels(from_ca, to_ca).inc()


def count_certificate_issued(*, renewal: bool) -> None:
    """Call when a certificate is stored."""
    CERTIFICATES_ISSUED.labels(_kind(renewal)).inc()


def count_issuance_failure(failure_class: str) -> None:
    """Call for every failed attempt, with its FailureClass value."""
    label = failure_class if failure_class in _FAILURE_CLASSES else "other"
    ISSUANCE_FAILURES.labels(label).inc()


def set_rate_budget(bucket: str, tokens: float) -> None:
    """Report the tokens left in a rate-limit bucket (e.g. "new_orders", "registered_domain")."""
    RATE_BUDGET.labels(bucket).set(tokens)


def count_notification(kind: str) -> None:
    NOTIFICATIONS.labels(kind).inc()


def count_delivery(channel: str, outcome: str) -> None:
    DELIVERY_ATTEMPTS.labels(channel, outcome).inc()


def count_store_unavailable(code: str) -> None:
    """Call for each request refused because the database is read-only, full, locked or down."""
    STORE_UNAVAILABLE.labels(code).inc()


def count_clicks_pruned(deleted: int) -> None:
    if deleted:
        CLICKS_PRUNED.inc(deleted)


def count_certificates_pruned(deleted: int) -> None:
    if deleted:
        CERTIFICATES_PRUNED.inc(deleted)
