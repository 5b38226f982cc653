"""/dns-check: what a domain's DNS says now, and the records to create, before saving it.

For the platform's own pages: call it as the customer types (debounced), show the records,
and never make saving wait for it. It answers within a few seconds whatever DNS does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from linkcert.api.deps import ApiContextDep, CurrentPrincipal
from linkcert.api.problems import problem_responses
from linkcert.dns.preview import preview_dns

router = APIRouter(tags=["tracking domain"])


class DnsCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    domain: str = Field(max_length=1024, examples=["links.example-shop.com"])


class DnsRecordOut(BaseModel):
    name: str
    type: str
    value: str
    zone: str = Field(description="The record as a zone-file line.")
    present: bool | None = Field(description="Whether DNS has it now; null when not known.")


class DnsCheckOut(BaseModel):
    domain: str
    unicode_name: str
    ready: bool
    state: str = Field(
        description="ok, points_elsewhere, caa_blocked, dns_error, invalid, or unknown "
        "(the check could not finish in time)."
    )
    state_text: str
    found: str | None = Field(description="What the name resolves to now, in words.")
    records: list[DnsRecordOut] = Field(description="The records the domain needs.")
    problems: list[dict[str, Any]]


@router.post("/dns-check", responses=problem_responses(400, 401, 413, 415, 422, 429))
async def post_dns_check(
    body: DnsCheckIn, _: CurrentPrincipal, context: ApiContextDep
) -> DnsCheckOut:
    """Check a domain's DNS now: where it points, whether CAA lets our CA issue, what to add."""
    preview = await preview_dns(context.settings, body.domain)
    return DnsCheckOut.model_validate(preview.to_json())
