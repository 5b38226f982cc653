"""Alerts: telling customers, operators and programs what happened to a domain.

The worker records a notification in the same transaction as the change it reports
(`Notifier.emit`), with one delivery per recipient; `run_deliveries` sends them by email and
webhook, retrying on a schedule; `watch_expiry` records warnings for certificates that come
close to their end unrenewed. See docs/alerts.md.
"""

from linkcert.notify.delivery import DeliveryRunner, run_deliveries
from linkcert.notify.expiry import scan_expiring, watch_expiry
from linkcert.notify.kinds import NotificationKind
from linkcert.notify.outbox import Notifier, Recipients, emit
from linkcert.notify.webhooks import SIGNATURE_HEADER, SignatureError, verify_signature

__all__ = [
    "SIGNATURE_HEADER",
    "DeliveryRunner",
    "NotificationKind",
    "Notifier",
    "Recipients",
    "SignatureError",
    "emit",
    "run_deliveries",
    "scan_expiring",
    "verify_signature",
    "watch_expiry",
]
