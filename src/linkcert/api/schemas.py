"""The shapes of request and response bodies, which also make the OpenAPI document.

Request bodies are strict (no "5" for 5, no "yes" for true) and refuse unknown fields, so a
typo in a field name is an error rather than a silently ignored setting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from linkcert.config import Settings
from linkcert.domains import AccountSummary, DomainStatus
from linkcert.ownership import dcv_record, proof_records
from linkcert.states import (
    CERT_STATE_TEXT,
    DCV_STATE_TEXT,
    DNS_STATE_TEXT,
    SECURED_IN_ADVANCE,
    CertState,
    DcvState,
    DnsState,
)
from linkcert.store import ApiToken, utcnow
from linkcert.store.models import MAX_ID as MAX_ID
from linkcert.store.models import OPERATOR_TOKEN

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AccountIn(_Input):
    name: str = Field(min_length=1, max_length=200, examples=["Example Shop"])
    contact_emails: list[Annotated[str, Field(max_length=320)]] = Field(
        default_factory=list, max_length=20, examples=[["ops@shop.example"]]
    )


class AccountOut(BaseModel):
    id: int
    name: str
    contact_emails: list[str]
    tracking_domain: str | None = Field(description="ASCII form of the link tracking domain.")
    created_at: datetime
    upstreams: list[str] | None = Field(
        default=None,
        description="Proxy mode: the origins this account's names are relayed to, or null for "
        "the edge's `edge_upstreams`. Shown to operator tokens only (null for the account's own "
        "token); set by operators with PATCH.",
    )

    @classmethod
    def of(cls, summary: AccountSummary, *, operator: bool = True) -> AccountOut:
        data = summary.to_json()
        if not operator:
            data["upstreams"] = None  # the platform's internal addresses stay the platform's
        return cls.model_validate(data)


class AccountPatch(_Input):
    upstreams: list[Annotated[str, Field(max_length=300)]] | None = Field(
        description="Origins (`http://HOST:PORT` or `https://HOST:PORT`) for this account's "
        "names in proxy mode, used in turn; null or [] for the edge's `edge_upstreams`.",
        max_length=16,
        examples=[["http://tracker-eu.internal:8080"]],
    )


class AccountList(BaseModel):
    items: list[AccountOut]
    next: str | None = Field(description="The URL of the next page, or null on the last one.")


class TrackingDomainIn(_Input):
    domain: str = Field(examples=["links.shop.example"])


class DomainStatusOut(BaseModel):
    domain: str = Field(description="ASCII (A-label) form.")
    unicode_name: str
    account: str | None = Field(description="Name of the owning account.")
    dns_state: str = Field(description=f"One of: {', '.join(DnsState)}.")
    dns_state_text: str = Field(description="The DNS state in words, for customers.")
    cert_state: str = Field(description=f"One of: {', '.join(CertState)}.")
    cert_state_text: str = Field(description="The certificate state in words, for customers.")
    cert_state_note: str | None = Field(
        default=None,
        description="While the certificate waits for the CA (`waiting_for_ca`): why, and when "
        "linkcert tries again, in words. Null otherwise.",
    )
    problems: list[dict[str, str]] = Field(
        description="What stops the domain from being secured: code, message and fix."
    )
    warnings: list[dict[str, str]] = Field(
        default_factory=list,
        description="What to know though nothing stops the domain: code, message and fix. "
        "`mixed_script`: a label mixes scripts (UTS 39), as look-alike names do.",
    )
    issuer: str | None
    ca: str | None = Field(
        default=None,
        description="The configured CA (its name in `acme_cas`) that issued the current "
        "certificate. Null without one, or for an uploaded certificate.",
    )
    ca_reason: str | None = Field(
        default=None,
        description='Why that CA was chosen, in words ("the CAA records allow only ...", '
        '"... was unavailable"); null with a single CA configured.',
    )
    not_before: datetime | None
    not_after: datetime | None
    next_attempt_at: datetime | None
    failure_class: str | None
    wanted: bool = Field(description="False once detached: it is no longer renewed.")
    epoch: int = Field(
        default=0,
        description="The domain's link epoch: mint links with it (docs/tracking-links.md). It "
        "goes up when the domain is deleted, released or changes owner, which ends the links "
        "made before.",
    )
    dns_records: list[dict[str, str]] = Field(
        default_factory=list,
        description=(
            "The DNS records that prove the domain is this account's: a CNAME to the "
            "account's own target (or the edge's addresses) and the TXT record, which a name "
            "at a domain's root needs. Each has name, type, value and zone (one zone-file line)."
        ),
    )
    dcv_record: dict[str, str] | None = Field(
        default=None,
        description="With a delegation zone configured (`dcv_zone`): the record that "
        "delegates the domain's certificate checks to the platform, "
        "`_acme-challenge.<domain> CNAME <label>.<dcv_zone>`, to add before the CNAME so "
        "that the domain is secured before the switch (name, type, value, zone). Null "
        "otherwise.",
    )
    dcv: dict[str, Any] | None = Field(
        default=None,
        description="With a delegation zone configured: the delegation as last checked, "
        "`ok` (in place for this account, and CAA allows dns-01), `expected` (this account's "
        "target) and `found` (what `_acme-challenge.<domain>` pointed to; null without a "
        "CNAME). Null otherwise.",
    )
    dcv_state: str | None = Field(
        default=None,
        description=f"The delegation as last checked, one of: {', '.join(DcvState)}; null "
        "when no delegation zone is configured or it was not checked yet.",
    )
    dcv_state_text: str | None = Field(
        default=None, description="The delegation's state in words, for customers."
    )
    challenge: str | None = Field(
        default=None,
        description="How the current certificate was validated: `http-01`, or `dns-01` "
        "through the delegation. Null without a certificate from linkcert's CA.",
    )
    renew_at: datetime | None = Field(
        default=None,
        description="When the worker renews the current certificate (its stored plan). Null "
        "without a certificate.",
    )
    renewal_basis: Literal["ari", "lifetime"] | None = Field(
        default=None,
        description="`ari`: a time in the renewal window the CA suggested (ACME Renewal "
        "Information); `lifetime`: when about a third of the certificate's lifetime remains.",
    )
    ari_next_check_at: datetime | None = Field(
        default=None, description="With ARI: when linkcert asks the CA for its window again."
    )

    @classmethod
    def of(cls, status: DomainStatus, settings: Settings | None = None) -> DomainStatusOut:
        data = status.to_json()
        if settings is not None and status.dns_label:
            records = proof_records(
                settings.cname_targets, settings.edge_addresses, status.domain, status.dns_label
            )
            data["dns_records"] = [{**r.to_json(), "zone": r.zone_line()} for r in records]
        if settings is not None and settings.dcv_zone and status.dcv_label:
            record = dcv_record(status.domain, settings.dcv_zone, status.dcv_label)
            data["dcv_record"] = {**record.to_json(), "zone": record.zone_line()}
            data["dcv"] = {
                "ok": status.dcv_state == DcvState.OK,
                "expected": record.value.rstrip("."),
                "found": status.dcv_found,
            }
        if status.dcv_state is not None:
            data["dcv_state_text"] = _state_text(DCV_STATE_TEXT, DcvState, status.dcv_state)
        # States the worker may add later still come out, as their own name.
        data["dns_state_text"] = _state_text(DNS_STATE_TEXT, DnsState, status.dns_state)
        if status.secured_in_advance:
            data["dns_state_text"] = SECURED_IN_ADVANCE
        data["cert_state_text"] = _state_text(CERT_STATE_TEXT, CertState, status.cert_state)
        data["cert_state_note"] = status.note(utcnow())
        return cls.model_validate(data)


def _state_text(
    texts: dict[Any, str], kind: type[DnsState] | type[CertState] | type[DcvState], value: str
) -> str:
    try:
        return texts[kind(value)]
    except (ValueError, KeyError):
        return value


class DomainList(BaseModel):
    items: list[DomainStatusOut] = Field(description="In name order, at most `limit`.")
    next: str | None = Field(
        description="The URL (path and query) of the next page, with the same filters and an "
        "opaque `cursor`; null on the last page. Follow it as it is.",
        examples=["/api/v1/domains?limit=100&cursor=WzEsImxpbmtzLmFscGhhLnRlc3QiLCIzZjI..."],
    )


class EventOut(BaseModel):
    at: datetime
    kind: str
    dns_state: str
    cert_state: str
    message: str
    detail: dict[str, Any]


class EventList(BaseModel):
    domain: str
    items: list[EventOut] = Field(description="Oldest first; the most recent `limit` events.")


class TokenIn(_Input):
    name: str = Field(min_length=1, max_length=200, examples=["billing integration"])
    account_id: Id | None = Field(default=None, description="The account the token acts for.")
    operator: bool = Field(default=False, description="True for an operator token.")

    @model_validator(mode="after")
    def _one_kind(self) -> TokenIn:
        # Asking for exactly one of the two keeps a forgotten account_id from quietly
        # turning into an all-powerful operator token.
        if (self.account_id is None) == (not self.operator):
            raise ValueError('give either "account_id" or "operator": true, not both or neither')
        return self


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The first characters of the token, to recognise it.")
    account_id: int | None
    operator: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenOut:
        return cls(
            id=row.id,
            name=row.name,
            prefix=row.prefix,
            account_id=row.account_id,
            operator=row.kind == OPERATOR_TOKEN,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself. It is shown this once and not kept.")


class TokenRef(BaseModel):
    id: int
    name: str


class MeOut(BaseModel):
    kind: Literal["operator", "account"]
    account: AccountOut | None
    token: TokenRef
