"""The live status panel: rendered once with the page, then again whenever it changes.

The page's script asks for it every two seconds (every ten once nothing is expected to
change) and swaps the panel only when its digest differs, so that a keyboard user's focus is
not yanked away by a panel that merely ticked. The one-line summary goes to an aria-live
region, so that screen readers hear a state change without re-reading the whole panel.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.requests import Request

from linkcert.domains import DomainStatus, domain_events
from linkcert.store import Certificate, Domain, Store, utcnow
from linkcert.web.render import fragment
from linkcert.web.views import digest, status_view

FAST_POLL_MS = 2000
SLOW_POLL_MS = 10000
EVENTS_SHOWN = 6


def certificate_source(store: Store, name: str) -> str | None:
    """`acme`, `upload`, or `upload-private` for an upload that chains only to a root of the
    operator's private bundle (not publicly trusted)."""
    with store.session() as session:
        row = session.execute(
            select(Certificate.source, Certificate.private_ca)
            .join(Domain, Domain.current_certificate_id == Certificate.id)
            .where(Domain.name == name)
        ).first()
        if row is None:
            return None
        source, private = row
        return f"{source}-private" if private else str(source)


def status_payload(
    request: Request,
    store: Store,
    status: DomainStatus,
    *,
    csrf_token: str,
    retry_action: str,
    retry_fields: dict[str, str] | None = None,
    events_shown: int = EVENTS_SHOWN,
    history_open: bool = False,
) -> dict[str, Any]:
    """The panel's HTML with what the script needs to follow it."""
    events = domain_events(store, status.domain, limit=events_shown)
    source = certificate_source(store, status.domain)
    view = status_view(status, utcnow(), events=events, source=source)
    html = fragment(
        request,
        "_status.html",
        {
            "view": view,
            "csrf_token": csrf_token,
            "retry_action": retry_action,
            "retry_fields": retry_fields or {},
            "history_open": history_open,
        },
    )
    return {
        "html": html,
        "summary": view.summary,
        "digest": digest(status, len(events)),
        "poll_ms": SLOW_POLL_MS if view.settled else FAST_POLL_MS,
        "tone": view.tone,
    }
