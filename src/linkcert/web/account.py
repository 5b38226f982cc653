"""The customer's Account Details page: account information, the link tracking domain with the
DNS records it needs, its live status, and requests for brand link tracking domains.

Every form works without JavaScript (a post and a redirect). With it, the page checks DNS as
the customer types, saves without reloading, and follows the status every two seconds.
Saving never waits for the DNS check: the worker runs its own after the save.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, Response
from starlette.requests import Request
from starlette.responses import JSONResponse

from linkcert import account_domain
from linkcert.brand import (
    BrandRequestStatus,
    BrandRequestView,
    list_brand_requests,
    submit_brand_request,
)
from linkcert.dns.preview import DnsRecord, pointing_records, preview_dns
from linkcert.domains import (
    AccountSummary,
    DomainStatus,
    NotFound,
    NoTrackingDomain,
    account_dcv_secret,
    account_label,
    account_summary,
    domain_status_for,
    tracking_domain_status,
)
from linkcert.ownership import DCV_PREFIX, ClaimPolicy, account_target
from linkcert.refusals import Refused
from linkcert.states import CERT_STATE_TEXT, CertState
from linkcert.web.guard import (
    AccountVisitor,
    Visitor,
    WebContext,
    WebDep,
    from_script,
    require_csrf,
)
from linkcert.web.render import fragment, page, redirect
from linkcert.web.session import CSRF_HEADER
from linkcert.web.status import status_payload

RETRY_ACTION = "/account/retry"

router = APIRouter(include_in_schema=False)

NOTICES = {
    "saved": "Saved. We are securing your link tracking domain now: follow its status below.",
    "unchanged": "Nothing changed: that already is your link tracking domain.",
    "retrying": "Checking again now.",
    "brand-requested": "Your request was sent to our deliverability team. We will be in touch.",
}

BRAND_STATUS_TEXT: dict[str, str] = {
    BrandRequestStatus.REQUESTED: "Waiting for our deliverability team",
    BrandRequestStatus.APPROVED: "Approved: we are securing it automatically",
    BrandRequestStatus.UPLOADED: "Secured with a certificate our team installed",
    BrandRequestStatus.REJECTED: "Declined: contact support to talk about it",
}


@dataclass(frozen=True)
class BrandRow:
    request: BrandRequestView
    status_text: str
    certificate_text: str | None


@dataclass(frozen=True)
class FormProblem:
    """What to show next to a field after a refused post."""

    field: str
    message: str
    fix: str | None
    value: str


def _account_id(visitor: Visitor) -> int:
    account_id = visitor.principal.account_id
    assert account_id is not None  # account_visitor() let only account tokens through
    return account_id


def _brand_rows(web: WebContext, account_id: int) -> list[BrandRow]:
    rows = []
    for request in reversed(list_brand_requests(web.api.store, account_id=account_id)):
        certificate_text = None
        if request.status in (BrandRequestStatus.APPROVED, BrandRequestStatus.UPLOADED):
            try:
                status = domain_status_for(web.api.store, request.domain, account_id)
                certificate_text = CERT_STATE_TEXT.get(CertState(status.cert_state))
            except (NotFound, ValueError):
                certificate_text = None
        rows.append(
            BrandRow(
                request, BRAND_STATUS_TEXT.get(request.status, request.status), certificate_text
            )
        )
    return rows


def _panel(request: Request, web: WebContext, visitor: Visitor) -> dict[str, Any] | None:
    current = _current(web, _account_id(visitor))
    if current is None:
        return None
    return status_payload(
        request,
        web.api.store,
        current,
        csrf_token=visitor.session.csrf,
        retry_action=RETRY_ACTION,
    )


def _current(web: WebContext, account_id: int) -> DomainStatus | None:
    try:
        return tracking_domain_status(web.api.store, account_id)
    except NoTrackingDomain:
        return None


@dataclass(frozen=True)
class ShownRecord:
    record: DnsRecord
    why: str | None = None  # when to pick it, for one record of a choice


@dataclass(frozen=True)
class RecordGroup:
    """Records shown together under one sentence: `kind` "proof" (what makes the domain the
    account's and leads it to us) or "caa" (a separate step, needed only when CAA restricts
    issuance)."""

    kind: str
    intro: str
    records: list[ShownRecord]


def record_groups(records: list[DnsRecord]) -> list[RecordGroup]:
    """The records in the words the page shows them with, the same with and without script.

    The account's own CNAME and the TXT record each prove the name on their own, so they are a
    choice, not a list; a CAA record is an extra step of its own."""
    delegation = [r for r in records if r.name.startswith(DCV_PREFIX)]
    proof = [r for r in records if r.type != "CAA" and r not in delegation]
    caa = [r for r in records if r.type == "CAA"]
    groups: list[RecordGroup] = []
    if delegation:
        # First, so that the certificate is in place before traffic comes (DNS-01).
        groups.append(
            RecordGroup(
                "dcv",
                "1. To be secured before you switch, add this record first: it lets us get "
                "your certificate while your links still go elsewhere, and renew it from then "
                "on.",
                [ShownRecord(r) for r in delegation],
            )
        )
    types = [r.type for r in proof]
    if types == ["CNAME", "TXT"]:
        cname, txt = proof
        groups.append(
            RecordGroup(
                "proof",
                (
                    "2. Then, when you are ready to switch, point the domain at us with the "
                    "CNAME record (links are secured from the first click)."
                    if delegation
                    else "Add one of these two records: either one proves the domain is yours."
                ),
                [
                    ShownRecord(cname, "Recommended: the CNAME record."),
                    ShownRecord(
                        txt,
                        "Or the TXT record, if you cannot change the domain's CNAME, or for a "
                        "domain's root (such as yourbrand.com), where a CNAME is not possible.",
                    ),
                ],
            )
        )
    elif proof:
        intro = "Add these records:" if len(proof) > 1 else "Add this record:"
        groups.append(RecordGroup("proof", intro, [ShownRecord(r) for r in proof]))
    if caa:
        groups.append(
            RecordGroup(
                "caa",
                "Also required: this CAA record, so that our certificate authority may issue "
                "for your domain.",
                [ShownRecord(r) for r in caa],
            )
        )
    return groups


def records_html(request: Request, records: list[DnsRecord], show_presence: bool) -> str:
    """The records block, as the page renders it, for the script to put in place."""
    context = {"groups": record_groups(records), "show_presence": show_presence}
    return fragment(request, "_dns_records.html", context)


# Stands for the name being typed in the records the script shows before any check answers.
TYPED_NAME = "typed-name.linkcert.invalid"


def deliverability_addresses(setting: str | None) -> list[str]:
    """The addresses customers may write to about brand domains (the setting may hold several,
    comma-separated). Empty when unset: `operator_email`, which then receives the requests,
    is the operators' own and is not shown to customers."""
    return [part.strip() for part in (setting or "").split(",") if part.strip()]


def render_account(
    request: Request,
    web: WebContext,
    visitor: Visitor,
    *,
    notice: str | None = None,
    problem: FormProblem | None = None,
    status_code: int = 200,
) -> Response:
    account_id = _account_id(visitor)
    account: AccountSummary = account_summary(web.api.store, account_id)
    current = _current(web, account_id)
    settings = web.api.settings
    typed = problem.value if problem and problem.field == "domain" else None
    label = account_label(web.api.store, account_id)
    # This account's own CNAME target: what the page tells the customer to point at.
    target = account_target(settings.cname_targets, label)
    records: list[DnsRecord] = (
        pointing_records(settings, current.domain, current.dns_label, current.dcv_label)
        if current is not None and current.wanted
        else []
    )
    context: dict[str, Any] = {
        "title": "Account Details",
        "visitor": visitor,
        "csrf_token": visitor.session.csrf,
        "account": account,
        "domain_value": typed if typed is not None else (current.unicode_name if current else ""),
        "cname_target": (target + ".") if target else "",
        "records": records,
        "groups": record_groups(records),
        "guess_groups": record_groups(pointing_records(settings, TYPED_NAME, label)),
        "typed_name": TYPED_NAME,
        "status": _panel(request, web, visitor),
        "brand_rows": _brand_rows(web, account_id),
        "notice": NOTICES.get(notice or "") if notice != "brand-requested" else None,
        "brand_notice": NOTICES["brand-requested"] if notice == "brand-requested" else None,
        "saved_value": current.unicode_name if current is not None and current.wanted else "",
        "deliverability_addresses": deliverability_addresses(settings.deliverability_email),
        "brand_mail_subject": f"Brand link tracking domain for {account.name}",
        "problem": problem,
    }
    return page(request, "account.html", context, status_code)


@router.get("/account")
def account_page(
    request: Request, web: WebDep, visitor: AccountVisitor, notice: str | None = None
) -> Response:
    return render_account(request, web, visitor, notice=notice)


@router.get("/account/status")
def account_status(request: Request, web: WebDep, visitor: AccountVisitor) -> Response:
    """The status panel, for the page's script to follow without reloading."""
    panel = _panel(request, web, visitor)
    if panel is None:
        return JSONResponse({"html": "", "summary": "", "digest": "", "poll_ms": 0})
    return JSONResponse(panel, headers={"Cache-Control": "no-store"})


@router.post("/account/tracking-domain")
def save_tracking_domain(
    request: Request,
    web: WebDep,
    visitor: AccountVisitor,
    domain: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    require_csrf(request, visitor, csrf_token or request.headers.get(CSRF_HEADER))
    account_id = _account_id(visitor)
    if not domain.strip():
        problem = FormProblem(
            "domain", "Enter your link tracking domain, such as links.example.com.", None, domain
        )
        return _refused(request, web, visitor, problem, 422)
    try:
        saved = account_domain.save(
            web.api.store,
            account_id,
            domain,
            web.api.policy,
            ClaimPolicy.from_settings(web.api.settings),
            web.api.wake_worker,
        )
    except Refused as exc:
        return _refused(
            request, web, visitor, FormProblem("domain", exc.message, exc.fix, domain), exc.status
        )
    notice = "saved" if saved.changed else "unchanged"
    if from_script(request):
        # The records block as a reload shows it, so the page reads the same either way.
        now = _current(web, account_id)
        records = (
            pointing_records(web.api.settings, now.domain, now.dns_label, now.dcv_label)
            if now is not None and now.wanted
            else []
        )
        return JSONResponse(
            {
                "notice": NOTICES[notice],
                "status": _panel(request, web, visitor),
                "records_html": records_html(request, records, False),
            }
        )
    return redirect(f"/account?notice={notice}")


def _refused(
    request: Request, web: WebContext, visitor: Visitor, problem: FormProblem, status_code: int
) -> Response:
    if from_script(request):
        return JSONResponse(
            {"field": problem.field, "error": problem.message, "fix": problem.fix},
            status_code=status_code,
        )
    return render_account(request, web, visitor, problem=problem, status_code=status_code)


@router.post("/account/dns-check")
async def dns_check(
    request: Request,
    web: WebDep,
    visitor: AccountVisitor,
    domain: Annotated[str, Body(embed=True, max_length=1024)],
) -> Response:
    """What the typed name's DNS says now and which records it needs (for the script)."""
    require_csrf(request, visitor, request.headers.get(CSRF_HEADER))
    limiter = web.api.limiter
    wait = limiter.acquire(visitor.principal.token_id) if limiter is not None else None
    if wait is not None:
        return JSONResponse({"error": "Too many checks; wait a moment."}, status_code=429)
    label = account_label(web.api.store, _account_id(visitor))
    secret = account_dcv_secret(web.api.store, _account_id(visitor))
    preview = await preview_dns(web.api.settings, domain, label=label, dcv_secret=secret)
    body = {**preview.to_json(), "records_html": records_html(request, preview.records, True)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post("/account/retry")
def retry(
    request: Request,
    web: WebDep,
    visitor: AccountVisitor,
    csrf_token: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    require_csrf(request, visitor, csrf_token or request.headers.get(CSRF_HEADER))
    account_id = _account_id(visitor)
    try:
        account_domain.retry(web.api.store, account_id, web.api.wake_worker)
    except Refused as exc:
        if from_script(request):
            return JSONResponse({"error": exc.message, "fix": exc.fix}, status_code=exc.status)
        return render_account(
            request,
            web,
            visitor,
            problem=FormProblem("retry", exc.message, exc.fix, ""),
            status_code=exc.status,
        )
    if from_script(request):
        return JSONResponse(
            {"notice": NOTICES["retrying"], "status": _panel(request, web, visitor)}
        )
    return redirect("/account?notice=retrying")


@router.post("/account/brand-requests")
def request_brand_domain(
    request: Request,
    web: WebDep,
    visitor: AccountVisitor,
    domain: Annotated[str, Form(max_length=1024)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str | None, Form(max_length=100)] = None,
) -> Response:
    require_csrf(request, visitor, csrf_token)
    account_id = _account_id(visitor)
    if not domain.strip():
        problem = FormProblem("brand_domain", "Enter the brand domain you need.", None, domain)
        return render_account(request, web, visitor, problem=problem, status_code=422)
    try:
        submit_brand_request(
            web.api.store, web.api.settings, web.api.policy, account_id, domain, note
        )
    except Refused as exc:
        problem = FormProblem("brand_domain", exc.message, exc.fix, domain)
        return render_account(request, web, visitor, problem=problem, status_code=exc.status)
    return redirect("/account?notice=brand-requested#brand")
