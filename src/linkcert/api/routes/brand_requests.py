"""/brand-requests: brand link tracking domains, asked for by accounts, decided by operators.

An account asks (and sees its own requests); operators see the whole queue and approve a
request (the domain is then secured automatically), reject it, or complete it by uploading a
certificate and key obtained elsewhere. The functions under the routes are what the pages use
too, so both answer with the same problems.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from linkcert import brand
from linkcert.api.deps import ApiContext, ApiContextDep, CurrentPrincipal, OperatorPrincipal
from linkcert.api.problems import ProblemError, not_found, problem_for_refusal, problem_responses
from linkcert.api.routes.paging import next_page
from linkcert.api.schemas import MAX_ID, Id
from linkcert.brand import (
    MAX_NOTE_CHARS,
    BrandRequestStatus,
    BrandRequestView,
    brand_request,
    list_brand_requests,
)
from linkcert.domains import NotFound
from linkcert.keys import MasterKeys
from linkcert.refusals import Refused
from linkcert.uploads import MAX_UPLOAD_BYTES

router = APIRouter(tags=["brand link tracking domains"])

RequestId = Annotated[int, Path(ge=1, le=MAX_ID, description="The request's numeric id.")]


class BrandRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    domain: str = Field(max_length=1024, examples=["links.brand.example"])
    note: str = Field(default="", max_length=MAX_NOTE_CHARS, examples=["For the spring brand"])
    account_id: Id | None = Field(
        default=None, description="Operators only: the account the request is for."
    )


class BrandRequestOut(BaseModel):
    id: int
    account_id: int
    account: str
    domain: str = Field(description="ASCII (A-label) form.")
    unicode_name: str
    note: str
    status: BrandRequestStatus
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None

    @classmethod
    def of(cls, view: BrandRequestView) -> BrandRequestOut:
        return cls.model_validate(view.to_json())


class BrandRequestList(BaseModel):
    items: list[BrandRequestOut]
    next: str | None = Field(description="The URL of the next page, or null on the last one.")


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    certificate: str = Field(
        max_length=MAX_UPLOAD_BYTES,
        description="PEM: the domain's certificate first, then its intermediates.",
    )
    private_key: str = Field(max_length=MAX_UPLOAD_BYTES, description="PEM, unencrypted.")


# --- what the routes do: the brand use cases; a `Refused` answers as its problem document ---


def upload_keys(context: ApiContext) -> MasterKeys:
    """The master keys to store a key sent to the API under; a 503 problem without one."""
    try:
        return brand.keys_to_store_with(context.settings)
    except Refused as exc:
        raise problem_for_refusal(exc) from None


# --- the routes ----------------------------------------------------------------------------


@router.post(
    "/brand-requests",
    status_code=201,
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429),
)
def post_brand_request(
    body: BrandRequestIn, principal: CurrentPrincipal, context: ApiContextDep
) -> BrandRequestOut:
    """Ask the deliverability team for a brand link tracking domain.

    An account token asks for its own account; an operator names the account with
    `account_id`. The team is notified; the request then waits for their decision.
    """
    if principal.is_operator:
        if body.account_id is None:
            raise ProblemError(
                422,
                "validation-error",
                "Say which account the request is for.",
                fix='Send {"domain": ..., "account_id": N}.',
            )
        account_id = body.account_id
    else:
        assert principal.account_id is not None
        if body.account_id not in (None, principal.account_id):
            # The same answer as for an account that does not exist.
            raise not_found(f"There is no account {body.account_id}.")
        account_id = principal.account_id
    return BrandRequestOut.of(
        brand.submit_brand_request(
            context.store, context.settings, context.policy, account_id, body.domain, body.note
        )
    )


@router.get("/brand-requests", responses=problem_responses(401, 422, 429))
def get_brand_requests(
    request: Request,
    principal: CurrentPrincipal,
    context: ApiContextDep,
    status: BrandRequestStatus | None = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Start after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> BrandRequestList:
    """The queue, oldest first: all requests for operators, the account's own otherwise."""
    views = list_brand_requests(
        context.store,
        account_id=None if principal.is_operator else principal.account_id,
        status=status.value if status else None,
        after_id=after,
        limit=limit,
    )
    last = str(views[-1].id) if views else None
    return BrandRequestList(
        items=[BrandRequestOut.of(v) for v in views],
        next=next_page(request, len(views), limit, last),
    )


@router.get("/brand-requests/{request_id}", responses=problem_responses(401, 404, 422, 429))
def get_brand_request(
    request_id: RequestId, principal: CurrentPrincipal, context: ApiContextDep
) -> BrandRequestOut:
    """One request (operator, or the account that made it)."""
    account_id = None if principal.is_operator else principal.account_id
    try:
        return BrandRequestOut.of(brand_request(context.store, request_id, account_id))
    except NotFound:
        raise not_found(f"There is no brand domain request {request_id}.") from None


@router.post(
    "/brand-requests/{request_id}/approve",
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
def post_approve(
    request_id: RequestId, principal: OperatorPrincipal, context: ApiContextDep
) -> BrandRequestOut:
    """Approve (operator): the domain is secured automatically, like any other."""
    return BrandRequestOut.of(
        brand.approve(context.store, request_id, principal.decider, context.wake_worker)
    )


@router.post(
    "/brand-requests/{request_id}/reject",
    responses=problem_responses(401, 403, 404, 409, 422, 429),
)
def post_reject(
    request_id: RequestId, principal: OperatorPrincipal, context: ApiContextDep
) -> BrandRequestOut:
    """Reject a waiting request (operator)."""
    return BrandRequestOut.of(brand.reject(context.store, request_id, principal.decider))


@router.post(
    "/brand-requests/{request_id}/upload",
    responses=problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
)
def post_upload(
    request_id: RequestId, body: UploadIn, principal: OperatorPrincipal, context: ApiContextDep
) -> BrandRequestOut:
    """Complete a request with a certificate and key obtained elsewhere (operator).

    The chain must start with the domain's certificate (not a CA), follow with the
    certificates that signed it in order, match the key, name the domain in its SAN and be
    valid now. Served at once; nothing is stored when a check fails (422).
    """
    return BrandRequestOut.of(
        brand.upload(
            context.store,
            context.settings,
            request_id,
            body.certificate,
            body.private_key,
            principal.decider,
        ).view
    )
