"""/events: click and open events by cursor; /accounts/{id}/webhooks: where batches of them go.

Every consumer gets each event at least once and tells repeats apart by its `id`. The cursor
is the id of the last event read: ids only grow, and an event is never committed below one
already readable, so a client that asks with `after` = the last id it saw misses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, Field

from linkcert.api.deps import ApiContextDep, CurrentPrincipal, require_account_access
from linkcert.api.problems import ProblemError, not_found, problem_responses
from linkcert.api.routes.accounts import AccountId
from linkcert.api.routes.brand_requests import upload_keys
from linkcert.events.endpoints import (
    Endpoint,
    EndpointRefused,
    add_endpoint,
    delete_endpoint,
    list_endpoints,
)
from linkcert.events.store import MAX_PAGE, event_json, list_events

router = APIRouter(tags=["events"])

MAX_ID = 2**63 - 1


class EventOut(BaseModel):
    id: str = Field(description="Unique and growing: the cursor, and the key to drop repeats by.")
    domain: str = Field(description="The link tracking domain the link was followed on.")
    account_id: int | None = Field(description="The account the domain belonged to.")
    kind: str = Field(description="`click` (the link) or `open` (the open pixel).")
    data: str | None = Field(
        description="The link's data as text, or null if it is not valid UTF-8."
    )
    data_base64: str = Field(description="The link's data, byte for byte, in base64.")
    link_id: int | None = Field(description="The link id the token carries, if any.")
    destination: str = Field(description="Where the link leads.")
    at: datetime = Field(description="When the edge answered it (UTC).")
    seconds_since_mint: int | None = Field(
        description="Seconds between minting the link and this event (version 2 links)."
    )
    client_ip: str | None = Field(
        description="The client's address, its /24 or /48 network, or null (event_client_ip)."
    )
    user_agent: str | None = Field(description="The User-Agent header, cut at 512 bytes.")
    machine: str | None = Field(
        description="Why this is not a person (`head`, `agent:<name>`, `soon_after_mint`), "
        "or null. Machine requests are answered like the others."
    )


class EventPage(BaseModel):
    events: list[EventOut] = Field(description="Oldest first.")
    next: str = Field(description="The cursor to ask with next (`after`); the same if empty.")


@router.get("/events", responses=problem_responses(401, 422, 429))
def get_events(
    principal: CurrentPrincipal,
    context: ApiContextDep,
    after: Annotated[
        str,
        Query(
            pattern=r"^[0-9]{1,19}$",
            description="The cursor: the id of the last event already read; 0 from the start.",
        ),
    ] = "0",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> EventPage:
    """Click and open events after the cursor, oldest first: an account token sees its own
    domains' events, an operator token every account's."""
    cursor = min(int(after), MAX_ID)
    account_id = None if principal.is_operator else principal.account_id
    if account_id is None and not principal.is_operator:
        return EventPage(events=[], next=after)
    with context.store.session() as session:
        rows = list_events(session, cursor, limit, account_id)
        events = [EventOut.model_validate(event_json(row)) for row in rows]
    return EventPage(events=events, next=events[-1].id if events else str(cursor))


class WebhookIn(BaseModel):
    url: str = Field(description="An https URL on a public address.", max_length=2048)


class WebhookOut(BaseModel):
    id: int
    url: str
    created_at: datetime
    secret: str | None = Field(
        default=None,
        description="The signing secret, shown only in the answer that made the endpoint.",
    )

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookOut:
        return cls(
            id=endpoint.id, url=endpoint.url, created_at=endpoint.created_at, secret=endpoint.secret
        )


HOOKS = "/accounts/{account_id}/webhooks"


@router.post(
    HOOKS,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 404, 413, 415, 422, 429, 503),
)
def create_webhook(
    account_id: AccountId, body: WebhookIn, principal: CurrentPrincipal, context: ApiContextDep
) -> WebhookOut:
    """Send this account's click and open events, in signed batches, to an https endpoint."""
    require_account_access(principal, account_id)
    keys = upload_keys(context)
    try:
        endpoint = add_endpoint(
            context.store,
            keys,
            account_id,
            body.url,
            allow_private=context.settings.webhook_allow_private_addresses,
        )
    except EndpointRefused as exc:
        raise ProblemError(
            422,
            "invalid-endpoint",
            f"This URL can't receive events: {exc}.",
            fix="Use an https:// URL whose host resolves only to public addresses.",
        ) from None
    except LookupError:
        raise not_found(f"There is no account {account_id}.") from None
    return WebhookOut.of(endpoint)


@router.get(HOOKS, responses=problem_responses(401, 404, 422, 429))
def get_webhooks(
    account_id: AccountId, principal: CurrentPrincipal, context: ApiContextDep
) -> list[WebhookOut]:
    """The account's event endpoints (without their secrets)."""
    require_account_access(principal, account_id)
    return [WebhookOut.of(e) for e in list_endpoints(context.store, account_id)]


@router.delete(
    HOOKS + "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 422, 429),
)
def remove_webhook(
    account_id: AccountId,
    webhook_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    principal: CurrentPrincipal,
    context: ApiContextDep,
) -> Response:
    """Stop sending to an endpoint; batches still owed to it are dropped."""
    require_account_access(principal, account_id)
    if not delete_endpoint(context.store, account_id, webhook_id):
        raise not_found(f"Account {account_id} has no endpoint {webhook_id}.")
    return Response(status_code=204)
