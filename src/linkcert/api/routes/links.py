"""/links: mint tracked links on a link tracking domain.

A tracked link's token carries its destination and id, signed with the tracking key and bound
to the domain, so the edge can redirect without a database lookup and is never an open
redirect. An account mints links only on its own domain.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from linkcert.api.deps import ApiContext, ApiContextDep, CurrentPrincipal
from linkcert.api.problems import ProblemError, not_found, problem_responses
from linkcert.config import ConfigError
from linkcert.domains import NotFound
from linkcert.links import TrackedUrl, create_link, tracking_keys
from linkcert.store import Account
from linkcert.tracking import InvalidDestination, TrackingKeys

router = APIRouter(tags=["tracked links"])


class LinkIn(BaseModel):
    url: str = Field(description="The destination: an absolute http or https URL.")
    domain: str | None = Field(
        default=None,
        description="The link tracking domain; defaults to the account's own.",
    )


class LinkOut(BaseModel):
    link_id: int | None = Field(description="The stored link's id; null for batch links.")
    domain: str
    destination: str
    url: str = Field(description="The tracked click URL to put in the email.")
    open_url: str = Field(description="The open-tracking pixel URL.")

    @classmethod
    def of(cls, link: TrackedUrl) -> LinkOut:
        return cls(
            link_id=link.link_id,
            domain=link.domain,
            destination=link.destination,
            url=link.url,
            open_url=link.open_url,
        )


def _tracking_key(context: ApiContext) -> TrackingKeys:
    try:
        return tracking_keys(context.settings)
    except ConfigError:
        raise ProblemError(
            503,
            "tracking-unavailable",
            "No tracking key is configured.",
            fix="Set LINKCERT_TRACKING_KEY to a secret of at least 32 characters.",
        ) from None


def _domain_for(context: ApiContext, principal_account: int | None, given: str | None) -> str:
    if given:
        return given
    if principal_account is not None:
        with context.store.session() as session:
            account = session.get(Account, principal_account)
            if account is not None and account.tracking_domain is not None:
                return account.tracking_domain.name
    raise ProblemError(
        422,
        "validation-error",
        "Say which link tracking domain the link is for.",
        fix='Send {"url": ..., "domain": "links.example.com"}, or save a tracking domain first.',
    )


@router.post(
    "/links",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 404, 413, 415, 422, 429, 503),
)
def create_tracked_link(
    body: LinkIn, principal: CurrentPrincipal, context: ApiContextDep
) -> LinkOut:
    """Mint a tracked link to `url` on the account's link tracking domain."""
    key = _tracking_key(context)
    account_id = None if principal.is_operator else principal.account_id
    domain = _domain_for(context, principal.account_id, body.domain)
    try:
        link = create_link(context.store, key, domain, body.url, account_id=account_id)
    except InvalidDestination as exc:
        raise ProblemError(
            422,
            "invalid-destination",
            str(exc),
            fix="Use an absolute http:// or https:// URL with a host name, up to 2,048 characters "
            "once its non-ASCII characters are encoded.",
        ) from None
    except NotFound:
        raise not_found(f"There is no link tracking domain {domain!r}.") from None
    return LinkOut.of(link)
