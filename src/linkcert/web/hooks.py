"""Where the pages and the API tell other parts of the platform that something happened.

Callers call a hook once the change is stored; a failing hook never undoes or fails the
request that triggered it.
"""

from __future__ import annotations

import logging

from linkcert.brand import BrandRequestView
from linkcert.config import Settings
from linkcert.notify import NotificationKind, emit
from linkcert.store import Store

log = logging.getLogger("linkcert.notify")


def notify_brand_request(store: Store, settings: Settings, request: BrandRequestView) -> None:
    """A new brand link tracking domain request waits for the deliverability team.

    The alert goes out through the delivery loop (email to `deliverability_email`, or the
    operators' address, and the webhooks).
    """
    try:
        with store.session() as session:
            emit(
                session,
                NotificationKind.BRAND_REQUESTED,
                request.domain,
                message=(
                    f"Account {request.account!r} asks for the brand link tracking domain "
                    f"{request.domain} (request {request.id})."
                ),
                details={"request_id": request.id, "account": request.account},
                settings=settings,
            )
        if not (settings.deliverability_email or settings.operator_email):
            log.warning(
                "brand domain request %d (%s) waits in the queue; no deliverability_email "
                "or operator_email is configured to tell",
                request.id,
                request.domain,
            )
    except Exception:
        log.exception("could not record the notice of brand domain request %d", request.id)
