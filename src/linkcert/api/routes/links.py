"""/links: mint tracked links on a link tracking domain, one or up to 10,000 at a time.

A tracked link's token carries its destination and the platform's data, signed with the
tracking key and bound to the domain, so the edge can redirect without a database lookup and
is never an open redirect. An account mints links only on its own domain. The token format is
public (docs/tracking-links.md): a platform may equally mint links itself.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json

from fastapi import APIRouter, status
from fastapi.responses import Response
from pydantic import BaseModel, Field, SecretStr

from linkcert.api.deps import ApiContext, ApiContextDep, CurrentPrincipal
from linkcert.api.problems import ProblemError, not_found, problem_responses
from linkcert.config import ConfigError, Settings
from linkcert.domains import NotFound, NotProven
from linkcert.links import (
    MAX_BATCH_LINKS,
    BatchItem,
    InvalidBatch,
    TrackedUrl,
    create_link,
    create_links,
    tracking_keys,
)
from linkcert.store import Account
from linkcert.tracking import (
    MAX_DATA_BYTES,
    InvalidDestination,
    TrackingKeys,
    check_destination,
)

router = APIRouter(tags=["tracked links"])


def _not_proven(exc: NotProven) -> ProblemError:
    return ProblemError(
        409,
        "domain-not-proven",
        f"{exc}.",  # it starts with the domain name, which keeps its case
        fix="Create the DNS records shown in GET /api/v1/accounts/{id}/tracking-domain; "
        "links can be made once the status shows the domain as the account's.",
    )


# What one batch request may weigh: 10,000 links of the longest URL and data, with room.
MAX_BATCH_BODY_BYTES = 32 * 1024 * 1024

_DATA_DESCRIPTION = (
    "Up to 255 bytes the platform chooses (message, recipient, campaign ids...), carried in "
    "the link and handed back in its click and open events. `data` is text (UTF-8); "
    "`data_base64` is for binary data. At most one of the two."
)


class LinkIn(BaseModel):
    url: str = Field(description="The destination: an absolute http or https URL.")
    domain: str | None = Field(
        default=None,
        description="The link tracking domain; defaults to the account's own.",
    )
    data: str | None = Field(default=None, description=_DATA_DESCRIPTION)
    data_base64: str | None = Field(default=None, description=_DATA_DESCRIPTION)


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


class BatchLinkIn(BaseModel):
    url: str = Field(description="The destination: an absolute http or https URL.")
    data: str | None = Field(default=None, description=_DATA_DESCRIPTION)
    data_base64: str | None = Field(default=None, description=_DATA_DESCRIPTION)


class BatchIn(BaseModel):
    domain: str | None = Field(
        default=None,
        description="The link tracking domain of every link; defaults to the account's own.",
    )
    links: list[BatchLinkIn] = Field(
        min_length=1,
        max_length=MAX_BATCH_LINKS,
        description=f"1 to {MAX_BATCH_LINKS:,} links, answered in the same order.",
    )


class BatchLinkOut(BaseModel):
    url: str = Field(description="The tracked click URL to put in the email.")
    open_url: str = Field(description="The open-tracking pixel URL.")


class BatchOut(BaseModel):
    domain: str
    links: list[BatchLinkOut] = Field(description="One per link sent, in the same order.")


@functools.lru_cache(maxsize=4)
def _keys_for(secrets: tuple[str | None, tuple[str, ...]]) -> TrackingKeys:
    single, entries = secrets
    return tracking_keys(
        Settings.model_construct(
            tracking_key=None if single is None else SecretStr(single),
            tracking_keys=tuple(SecretStr(entry) for entry in entries),
        )
    )


def _tracking_key(context: ApiContext) -> TrackingKeys:
    settings = context.settings
    single = settings.tracking_key
    secrets = (
        None if single is None else single.get_secret_value(),
        tuple(entry.get_secret_value() for entry in settings.tracking_keys),
    )
    try:
        return _keys_for(secrets)
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


def _data_of(text: str | None, encoded: str | None) -> bytes:
    """The link's data from `data` (UTF-8 text) or `data_base64`; ValueError says what is
    wrong."""
    if text is not None and encoded is not None:
        raise ValueError("send data or data_base64, not both")
    if encoded is not None:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("data_base64 is not valid base64") from None
    elif text is not None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("data is not valid Unicode text; send binary as data_base64") from None
    else:
        return b""
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"data is {len(data)} bytes long; the limit is {MAX_DATA_BYTES}")
    return data


@router.post(
    "/links",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
)
def create_tracked_link(
    body: LinkIn, principal: CurrentPrincipal, context: ApiContextDep
) -> LinkOut:
    """Mint a tracked link to `url` on the account's link tracking domain."""
    key = _tracking_key(context)
    account_id = None if principal.is_operator else principal.account_id
    domain = _domain_for(context, principal.account_id, body.domain)
    try:
        data = _data_of(body.data, body.data_base64)
    except ValueError as exc:
        raise ProblemError(
            422, "validation-error", str(exc), fix=f"Send at most {MAX_DATA_BYTES} bytes of data."
        ) from None
    try:
        link = create_link(context.store, key, domain, body.url, account_id=account_id, data=data)
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
    except NotProven as exc:
        raise _not_proven(exc) from None
    return LinkOut.of(link)


@router.post(
    "/links/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchOut,
    responses=problem_responses(400, 401, 404, 413, 415, 422, 429, 503),
)
def create_tracked_links(
    body: BatchIn, principal: CurrentPrincipal, context: ApiContextDep
) -> Response:
    """Mint up to 10,000 tracked links on one link tracking domain, answered in order.

    Nothing is stored and nothing is minted if any link is bad: the problem's `errors` lists
    each bad link by its `index` in `links`, with what is wrong.
    """
    key = _tracking_key(context)
    account_id = None if principal.is_operator else principal.account_id
    domain = _domain_for(context, principal.account_id, body.domain)
    items: list[BatchItem] = []
    problems: list[tuple[int, str]] = []
    for index, link in enumerate(body.links):
        try:
            items.append(
                BatchItem(check_destination(link.url), _data_of(link.data, link.data_base64))
            )
        except ValueError as exc:  # InvalidDestination is one
            problems.append((index, str(exc)))
    try:
        if problems:
            raise InvalidBatch(problems)
        minted = create_links(context.store, key, domain, items, account_id=account_id)
    except InvalidBatch as exc:
        shown = exc.problems[:100]
        raise ProblemError(
            422,
            "invalid-destination",
            f"{len(exc.problems):,} of the {len(body.links):,} links cannot be minted; "
            "none was minted.",
            fix="Correct the links listed in `errors` (by their index in `links`) and send "
            "the batch again.",
            extra={
                "errors": [{"index": index, "detail": detail} for index, detail in shown],
                "errors_total": len(exc.problems),
            },
        ) from None
    except NotFound:
        raise not_found(f"There is no link tracking domain {domain!r}.") from None
    except NotProven as exc:
        raise _not_proven(exc) from None
    # Written directly: a response model would validate 10,000 objects again on the way out.
    # Tokens are base64url and domains ASCII: nothing in them needs escaping in JSON.
    click = f'{{"url":"https://{minted.domain}/c/'
    pixel = f'","open_url":"https://{minted.domain}/o/'
    body_bytes = (
        f'{{"domain":{json.dumps(minted.domain)},"links":['
        + ",".join([f'{click}{token}{pixel}{token}"}}' for token in minted.tokens])
        + "]}"
    ).encode("ascii")
    return Response(body_bytes, status_code=201, media_type="application/json")
