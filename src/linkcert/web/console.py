"""The deliverability team's console: every domain with filters and search, forced retries,
and the queue of brand link tracking domain requests (approve, reject, or upload a
certificate obtained elsewhere).

Operators only. Each action is a form post followed by a redirect back to the view it came
from, so reloading never repeats it. The decisions themselves are the API's functions, with
the same checks and the same messages.
"""

from __future__ import annotations

import weakref
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from linkcert import brand
from linkcert.brand import UPLOADABLE, BrandRequestStatus, brand_request, list_brand_requests
from linkcert.domains import (
    Conflict,
    NotFound,
    TooEarly,
    account_upstreams_of_domain,
    domain_status,
    retry_now,
)
from linkcert.refusals import Refused
from linkcert.store import Store, utcnow
from linkcert.store.models import MAX_ID
from linkcert.uploads import MAX_UPLOAD_BYTES
from linkcert.web.filters import (
    FILTER_HELP,
    FILTER_LABELS,
    CountsSummary,
    DomainFilter,
    find_console_rows,
)
from linkcert.web.guard import (
    OperatorVisitor,
    Visitor,
    WebContext,
    WebDep,
    from_script,
    require_csrf,
)
from linkcert.web.render import page, redirect
from linkcert.web.status import status_payload
from linkcert.web.views import cert_text, cert_tone, dns_text, dns_tone

router = APIRouter(include_in_schema=False)

CONSOLE = "/console"
RETRY_ACTION = "/console/domains/retry"
RECENT_DECISIONS = 20
QUEUE_LIMIT = 500
HISTORY_SHOWN = 30

RequestId = Annotated[int, Path(ge=1, le=MAX_ID)]

# The filters' counts without a search, per store: read at most once a minute (see filters.py).
_COUNTS: weakref.WeakKeyDictionary[Store, CountsSummary] = weakref.WeakKeyDictionary()


def filter_counts(store: Store, search: str) -> dict[DomainFilter, int]:
    """The filters' counts beside them; none with a search (each count would read the whole
    fleet again: the search itself already does, once)."""
    if search:
        return {}
    summary = _COUNTS.get(store)
    if summary is None:
        summary = _COUNTS.setdefault(store, CountsSummary(store))
    return summary.counts()


CsrfField = Annotated[str | None, Form(max_length=100)]
BackField = Annotated[str, Form(max_length=600)]


def console_url(which: DomainFilter = DomainFilter.ALL, search: str = "", **more: str) -> str:
    params = {"filter": which.value} if which is not DomainFilter.ALL else {}
    if search:
        params["q"] = search
    params.update(more)
    return CONSOLE + ("?" + urlencode(params) if params else "")


def domain_url(name: str) -> str:
    return f"{CONSOLE}/domains/{name}"


def _back(target: str) -> str:
    """Where to return after an action: a console view, never another site."""
    if target.startswith(CONSOLE) and not target.startswith("//") and "\\" not in target:
        return target
    return CONSOLE


def _with(target: str, **params: str) -> str:
    separator = "&" if "?" in target else "?"
    return f"{target}{separator}{urlencode(params)}"


def _notice(
    web: WebContext, notice: str | None, request_id: int | None, name: str | None
) -> str | None:
    """The sentence for a notice, built from the store, never from text in the URL."""
    if notice == "retried" and name:
        try:
            return f"Retrying {domain_status(web.api.store, name).unicode_name} now."
        except NotFound:
            return None
    if notice in ("approved", "rejected", "uploaded") and request_id:
        try:
            view = brand_request(web.api.store, request_id)
        except NotFound:
            return None
        sentences = {
            "approved": f"Request {view.id} approved: {view.unicode_name} is being secured "
            "automatically.",
            "rejected": f"Request {view.id} ({view.unicode_name}) was rejected.",
            "uploaded": f"Request {view.id}: {view.unicode_name} now serves the uploaded "
            "certificate.",
        }
        return sentences[notice]
    return None


def render_console(
    request: Request,
    web: WebContext,
    visitor: Visitor,
    *,
    which: DomainFilter = DomainFilter.ALL,
    search: str = "",
    after: str = "",
    notice: str | None = None,
    error: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    now = utcnow()
    store = web.api.store
    rows, next_after = find_console_rows(store, which, search, now, after=after)
    context: dict[str, Any] = {
        "title": "Deliverability console",
        "visitor": visitor,
        "csrf_token": visitor.session.csrf,
        "filters": [
            (f, FILTER_LABELS[f], FILTER_HELP[f], console_url(f, search)) for f in DomainFilter
        ],
        "which": which,
        "search": search,
        "counts": {f: f"{n:,}" for f, n in filter_counts(store, search).items()},
        "rows": rows,
        "next_url": console_url(which, search, after=next_after) if next_after else None,
        "here": console_url(which, search),
        "waiting": list_brand_requests(
            store, status=BrandRequestStatus.REQUESTED, limit=QUEUE_LIMIT
        ),
        "decided": list_brand_requests(
            store,
            excluding_status=BrandRequestStatus.REQUESTED,
            newest_first=True,
            limit=RECENT_DECISIONS,
        ),
        "uploadable": [status.value for status in UPLOADABLE],
        "notice": notice,
        "error": error,
        "now": now,
        "max_upload_kib": MAX_UPLOAD_BYTES // 1024,
        "domain_url": domain_url,
        "tones": {"dns": dns_tone, "cert": cert_tone},
        "texts": {"dns": dns_text, "cert": cert_text},
    }
    return page(request, "console.html", context, status_code)


@router.get(CONSOLE)
def console_page(
    request: Request,
    web: WebDep,
    visitor: OperatorVisitor,
    which: Annotated[DomainFilter, Query(alias="filter")] = DomainFilter.ALL,
    search: Annotated[str, Query(alias="q", max_length=253)] = "",
    after: Annotated[str, Query(max_length=253)] = "",
    notice: Annotated[str | None, Query(max_length=20)] = None,
    request_id: Annotated[int | None, Query(alias="id", ge=1, le=MAX_ID)] = None,
    name: Annotated[str | None, Query(alias="domain", max_length=253)] = None,
) -> Response:
    return render_console(
        request,
        web,
        visitor,
        which=which,
        search=search.strip(),
        after=after,
        notice=_notice(web, notice, request_id, name),
    )


# --- one domain --------------------------------------------------------------------------


def _domain_panel(request: Request, web: WebContext, visitor: Visitor, name: str) -> dict[str, Any]:
    status = domain_status(web.api.store, name)
    return status_payload(
        request,
        web.api.store,
        status,
        csrf_token=visitor.session.csrf,
        retry_action=RETRY_ACTION,
        retry_fields={"domain": status.domain, "back": domain_url(status.domain)},
        events_shown=HISTORY_SHOWN,
        history_open=True,
    )


def _tracker(web: WebContext, name: str) -> dict[str, Any] | None:
    """Where the edge relays this domain's requests in proxy mode (read-only here: operators
    set an account's origins through the API), or None in tracking mode with none set."""
    own = account_upstreams_of_domain(web.api.store, name)
    settings = web.api.settings
    if own is None and settings.edge_mode == "tracking":
        return None
    return {
        "origins": own or list(settings.edge_upstreams),
        "own": own is not None,
        "mode": settings.edge_mode,
    }


@router.get(CONSOLE + "/domains/{name}")
def domain_page(
    request: Request,
    web: WebDep,
    visitor: OperatorVisitor,
    name: Annotated[str, Path(max_length=253)],
    notice: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    try:
        status = domain_status(web.api.store, name)
    except NotFound:
        message = "There is no such domain. It may have been typed wrong."
        return page(request, "error.html", {"title": "Not found", "message": message}, 404)
    context = {
        "title": status.unicode_name,
        "visitor": visitor,
        "csrf_token": visitor.session.csrf,
        "status": status,
        "tracker": _tracker(web, status.domain),
        "panel": _domain_panel(request, web, visitor, status.domain),
        "status_url": domain_url(status.domain) + "/status",
        "notice": _notice(web, notice, None, status.domain),
    }
    return page(request, "domain.html", context)


@router.get(CONSOLE + "/domains/{name}/status")
def domain_panel(
    request: Request,
    web: WebDep,
    visitor: OperatorVisitor,
    name: Annotated[str, Path(max_length=253)],
) -> Response:
    try:
        panel = _domain_panel(request, web, visitor, name)
    except NotFound:
        return JSONResponse({"error": "no such domain"}, status_code=404)
    return JSONResponse(panel, headers={"Cache-Control": "no-store"})


@router.post(RETRY_ACTION)
def retry_domain(
    request: Request,
    web: WebDep,
    visitor: OperatorVisitor,
    domain: Annotated[str, Form(max_length=253)] = "",
    back: BackField = CONSOLE,
    csrf_token: CsrfField = None,
) -> Response:
    require_csrf(request, visitor, csrf_token)
    target = _back(back)
    try:
        retried = retry_now(web.api.store, domain)
    except NotFound:
        return _failed(request, "There is no such domain.", target, 404)
    except (Conflict, TooEarly) as exc:
        return _failed(request, str(exc), target, 409)
    web.api.wake_worker()
    if from_script(request):  # the domain page's "Check again now", without a reload
        notice = f"Retrying {retried.unicode_name} now."
        panel = _domain_panel(request, web, visitor, retried.domain)
        return JSONResponse({"notice": notice, "status": panel})
    return redirect(_with(target, notice="retried", domain=retried.domain))


def _failed(request: Request, message: str, back: str, status_code: int) -> Response:
    if from_script(request):
        return JSONResponse({"error": message}, status_code=status_code)
    context = {"title": "Not done", "message": message, "back": back}
    return page(request, "error.html", context, status_code)


# --- the brand domain queue ----------------------------------------------------------------


def _decided(target: str, notice: str, request_id: int) -> Response:
    return redirect(_with(target, notice=notice, id=str(request_id)) + "#queue")


def _read(upload: UploadFile | None, pasted: str) -> bytes:
    """A file if one was chosen, else the pasted text; capped one byte over the limit, so
    that an oversized file is refused by the checks without being read whole."""
    if upload is not None and upload.filename:
        return upload.file.read(MAX_UPLOAD_BYTES + 1)
    return pasted.encode("utf-8")


@router.post(CONSOLE + "/brand-requests/{request_id}/upload")
def upload(
    request: Request,
    web: WebDep,
    visitor: OperatorVisitor,
    request_id: RequestId,
    certificate_file: Annotated[UploadFile | None, File()] = None,
    private_key_file: Annotated[UploadFile | None, File()] = None,
    certificate_text: Annotated[str, Form(max_length=MAX_UPLOAD_BYTES)] = "",
    private_key_text: Annotated[str, Form(max_length=MAX_UPLOAD_BYTES)] = "",
    back: BackField = CONSOLE,
    csrf_token: CsrfField = None,
) -> Response:
    require_csrf(request, visitor, csrf_token)
    target = _back(back)
    chain = _read(certificate_file, certificate_text)
    key = _read(private_key_file, private_key_text)
    try:
        brand.upload(web.api.store, web.api.settings, request_id, chain, key, _by(visitor))
    except Refused as exc:
        error = {"request_id": request_id, "message": exc.message, "fix": exc.fix}
        return render_console(request, web, visitor, error=error, status_code=exc.status)
    return _decided(target, "uploaded", request_id)


# Approve and reject take the same form and differ only in the decision they record. Declared
# after the upload route, which the `{decision}` pattern would otherwise shadow.
_NOTICES = {"approve": "approved", "reject": "rejected"}


def _by(visitor: OperatorVisitor) -> str:
    return visitor.principal.decider


@router.post(CONSOLE + "/brand-requests/{request_id}/{decision}")
def decide(
    request: Request,
    web: WebDep,
    visitor: OperatorVisitor,
    request_id: RequestId,
    decision: Literal["approve", "reject"],
    back: BackField = CONSOLE,
    csrf_token: CsrfField = None,
) -> Response:
    require_csrf(request, visitor, csrf_token)
    try:
        if decision == "approve":
            brand.approve(web.api.store, request_id, _by(visitor), web.api.wake_worker)
        else:
            brand.reject(web.api.store, request_id, _by(visitor))
    except Refused as exc:
        return _failed(request, exc.message, _back(back), exc.status)
    return _decided(_back(back), _NOTICES[decision], request_id)
