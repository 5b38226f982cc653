"""GET /deliveries: the delivery log of alert emails and webhooks (operators only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from linkcert.api.deps import ApiContextDep, OperatorPrincipal
from linkcert.api.problems import problem_responses
from linkcert.notify.log import DeliveryRecord, list_deliveries

router = APIRouter(tags=["deliveries"])

# Delivery ids are 64-bit on PostgreSQL.
MAX_BIG_ID = 2**63 - 1


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="The notification's id: the webhook body's `id`.")
    type: str = Field(description="What happened: secured, renewal_failed, expiring, ...")
    domain: str
    account: str | None
    channel: Literal["email", "webhook"]
    target: str = Field(description="The address, or the webhook URL without its query.")
    status: Literal["pending", "delivered", "failed"] = Field(
        description="failed: given up after the retry schedule (or refused for good)."
    )
    attempts: int
    last_error: str | None = Field(description="What the last failed attempt got.")
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, record: DeliveryRecord) -> DeliveryOut:
        return cls.model_validate(record.to_json())


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
    next: str | None = Field(description="The URL of the next (older) page, or null.")


@router.get("/deliveries", responses=problem_responses(401, 403, 422, 429))
def get_deliveries(
    request: Request,
    _: OperatorPrincipal,
    context: ApiContextDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    channel: Literal["email", "webhook"] | None = None,
    domain: Annotated[str | None, Query(max_length=253)] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_BIG_ID, description="Only deliveries older than this id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    """Alert deliveries, newest first (operator)."""
    records = list_deliveries(
        context.store, status=status, channel=channel, domain=domain, before=before, limit=limit
    )
    next_url = None
    if len(records) == limit and records:
        params = dict(request.query_params)
        params.update(before=str(records[-1].id), limit=str(limit))
        next_url = f"{request.url.path}?{urlencode(params)}"
    return DeliveryList(items=[DeliveryOut.of(r) for r in records], next=next_url)
