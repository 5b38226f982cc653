"""Where the pages and the API tell other parts of the platform that something happened.

For now each hook only logs. The platform's notification system will be wired in here, so
that callers never change: they call the hook once the change is stored, and a failing hook
never undoes or fails the request that triggered it.
"""

from __future__ import annotations

import logging

from linkcert.brand import BrandRequestView

log = logging.getLogger("linkcert.notify")


def notify_brand_request(request: BrandRequestView, deliverability_email: str | None) -> None:
    """A new brand link tracking domain request waits for the deliverability team."""
    try:
        if deliverability_email is None:
            log.warning(
                "brand domain request %d (%s, account %r) waits in the queue; no "
                "deliverability_email is configured to tell",
                request.id,
                request.domain,
                request.account,
            )
            return
        log.info(
            "brand domain request %d (%s, account %r) waits in the queue; notify %s",
            request.id,
            request.domain,
            request.account,
            deliverability_email,
            extra={"brand_request": request.to_json(), "notify": deliverability_email},
        )
    except Exception:
        log.exception("could not send the notice of brand domain request %d", request.id)
