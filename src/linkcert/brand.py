"""Brand link tracking domains: asked for by an account, provisioned by the deliverability team.

A request waits in a queue. An operator then either approves it, and the domain enters the
same automatic lifecycle as every link tracking domain (a domain row of kind "brand", due
now), or completes it with a certificate and key obtained elsewhere, or rejects it. Everything
here writes to the store and returns at once; the worker does the rest.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from linkcert.certificates import install_certificate
from linkcert.config import Settings
from linkcert.domains import Conflict, NotFound, claim_domain, find_account, record_event
from linkcert.keys import MasterKeyError, MasterKeys
from linkcert.names import STORED_NAMES, DomainNameError, NamePolicy, validate
from linkcert.notify import NotificationKind, emit
from linkcert.notify.outbox import Notifier
from linkcert.refusals import Refused, sentence
from linkcert.states import BrandRequestStatus as BrandRequestStatus  # re-exported
from linkcert.store import Account, BrandRequest, Domain, Store, utcnow
from linkcert.text import check_clean
from linkcert.uploads import (
    CheckedUpload,
    UploadError,
    check_upload,
    private_roots_from,
    store_upload,
)

log = logging.getLogger("linkcert.notify")

MAX_NOTE_CHARS = 1000


# A certificate may be uploaded to a request still waiting, to one approved whose automatic
# certificate cannot be had (a CAA record the brand keeps, say), and again to replace an
# uploaded certificate before it expires.
UPLOADABLE = (
    BrandRequestStatus.REQUESTED,
    BrandRequestStatus.APPROVED,
    BrandRequestStatus.UPLOADED,
)


class TooManyOpenRequests(Exception):
    """The account has as many requests waiting as it may; the message says how many."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this account already has {limit} brand domain request"
            f"{'' if limit == 1 else 's'} waiting for the deliverability team, the most it may have"
        )
        self.limit = limit


class RequestClosed(Exception):
    """The request is not in a state that allows this decision; the message says why."""


@dataclass(frozen=True)
class BrandRequestView:
    """One request, for the API, the pages and the CLI."""

    id: int
    account_id: int
    account: str
    domain: str
    unicode_name: str
    note: str
    status: str
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None

    @property
    def is_open(self) -> bool:
        return self.status == BrandRequestStatus.REQUESTED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "account": self.account,
            "domain": self.domain,
            "unicode_name": self.unicode_name,
            "note": self.note,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decided_by": self.decided_by,
        }


def _view(session: Session, row: BrandRequest) -> BrandRequestView:
    account = session.get(Account, row.account_id)
    unicode_name = row.domain
    domain = session.scalar(select(Domain).where(Domain.name == row.domain))
    if domain is not None:
        unicode_name = domain.unicode_name
    else:
        with contextlib.suppress(ValueError):
            unicode_name = validate(row.domain, STORED_NAMES).unicode
    return BrandRequestView(
        id=row.id,
        account_id=row.account_id,
        account=account.name if account else str(row.account_id),
        domain=row.domain,
        unicode_name=unicode_name,
        note=row.note,
        status=row.status,
        created_at=row.created_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
    )


def request_brand_domain(
    store: Store,
    account_ref: str | int,
    name: str,
    note: str,
    policy: NamePolicy,
    max_open: int | None = None,
) -> BrandRequestView:
    """Queue the account's request for `name` (DomainNameError, Conflict, ValueError,
    TooManyOpenRequests when the account already has `max_open` requests waiting)."""
    valid = validate(name, policy)
    note = check_clean(note.strip(), "note", multiline=True)
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"the note takes at most {MAX_NOTE_CHARS} characters")
    with store.session() as session:
        account = find_account(session, account_ref)
        domain = session.scalar(select(Domain).where(Domain.name == valid.ascii))
        if domain is not None and domain.account_id not in (None, account.id):
            raise Conflict(f"{valid.unicode} is already used by another account")
        if domain is not None and domain.account_id == account.id and domain.wanted:
            raise Conflict(f"{valid.unicode} is already secured for this account")
        pending = session.scalar(
            select(BrandRequest).where(
                BrandRequest.account_id == account.id,
                BrandRequest.domain == valid.ascii,
                BrandRequest.status == BrandRequestStatus.REQUESTED,
            )
        )
        if pending is not None:
            raise Conflict(
                f"{valid.unicode} was already requested (request {pending.id}); the "
                "deliverability team has it"
            )
        if max_open is not None:
            waiting = session.scalar(
                select(func.count())
                .select_from(BrandRequest)
                .where(
                    BrandRequest.account_id == account.id,
                    BrandRequest.status == BrandRequestStatus.REQUESTED,
                )
            )
            if (waiting or 0) >= max_open:
                raise TooManyOpenRequests(max_open)
        row = BrandRequest(
            account_id=account.id,
            domain=valid.ascii,
            note=note,
            status=BrandRequestStatus.REQUESTED,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return _view(session, row)


def notify_brand_request(store: Store, settings: Settings, request: BrandRequestView) -> None:
    """A new brand link tracking domain request waits for the deliverability team.

    The alert goes out through the delivery loop (email to `deliverability_email`, or the
    operators' address, and the webhooks).
    """
    try:
        with store.session() as session:
            emit(
                session,
                NotificationKind.BRAND_REQUESTED,
                request.domain,
                message=(
                    f"Account {request.account!r} asks for the brand link tracking domain "
                    f"{request.domain} (request {request.id})."
                ),
                details={"request_id": request.id, "account": request.account},
                settings=settings,
            )
        if not (settings.deliverability_email or settings.operator_email):
            log.warning(
                "brand domain request %d (%s) waits in the queue; no deliverability_email "
                "or operator_email is configured to tell",
                request.id,
                request.domain,
            )
    except Exception:  # a failing notice never undoes the stored request
        log.exception("could not record the notice of brand domain request %d", request.id)


def list_brand_requests(
    store: Store,
    *,
    account_id: int | None = None,
    status: str | None = None,
    excluding_status: str | None = None,
    after_id: int = 0,
    limit: int = 100,
    newest_first: bool = False,
) -> list[BrandRequestView]:
    """Requests in id order (oldest first, or newest first), one account's or all, optionally
    only those in one status or not in one."""
    query = select(BrandRequest).where(BrandRequest.id > after_id)
    query = query.order_by(BrandRequest.id.desc() if newest_first else BrandRequest.id)
    if account_id is not None:
        query = query.where(BrandRequest.account_id == account_id)
    if status is not None:
        query = query.where(BrandRequest.status == status)
    if excluding_status is not None:
        query = query.where(BrandRequest.status != excluding_status)
    with store.session() as session:
        return [_view(session, row) for row in session.scalars(query.limit(limit)).all()]


def brand_request(store: Store, request_id: int, account_id: int | None = None) -> BrandRequestView:
    """One request; another account's is reported exactly like a missing one."""
    with store.session() as session:
        return _view(session, _get(session, request_id, account_id))


def _get(session: Session, request_id: int, account_id: int | None = None) -> BrandRequest:
    row = session.get(BrandRequest, request_id)
    if row is None or (account_id is not None and row.account_id != account_id):
        raise NotFound(f"no brand domain request {request_id}")
    return row


def _require(row: BrandRequest, allowed: tuple[BrandRequestStatus, ...], action: str) -> None:
    if row.status not in allowed:
        raise RequestClosed(f"request {row.id} is {row.status}; it cannot be {action} any more")


def _decide(row: BrandRequest, status: BrandRequestStatus, decided_by: str) -> None:
    row.status = status
    row.decided_at = utcnow()
    row.decided_by = decided_by[:200]


def _brand_domain(session: Session, row: BrandRequest) -> Domain:
    """The domain row the request provisions, made on first use; kind "brand", wanted."""
    valid = validate(row.domain, STORED_NAMES)
    return claim_domain(session, valid, row.account_id, kind="brand", operator_approved=True)


def approve_brand_request(store: Store, request_id: int, decided_by: str) -> BrandRequestView:
    """Let the worker secure the domain like any other (the caller wakes it)."""
    with store.session() as session:
        row = _get(session, request_id)
        _require(row, (BrandRequestStatus.REQUESTED,), "approved")
        domain = _brand_domain(session, row)
        _decide(row, BrandRequestStatus.APPROVED, decided_by)
        record_event(
            session,
            domain,
            "brand_approved",
            f"The brand domain request was approved by {row.decided_by}; securing it now.",
            request_id=row.id,
        )
        return _view(session, row)


def reject_brand_request(store: Store, request_id: int, decided_by: str) -> BrandRequestView:
    with store.session() as session:
        row = _get(session, request_id)
        _require(row, (BrandRequestStatus.REQUESTED,), "rejected")
        _decide(row, BrandRequestStatus.REJECTED, decided_by)
        return _view(session, row)


def request_domain_name(store: Store, request_id: int) -> str:
    """The domain a request is for (to check an upload against it before storing)."""
    with store.session() as session:
        return _get(session, request_id).domain


def complete_with_upload(
    store: Store,
    keys: MasterKeys,
    request_id: int,
    upload: CheckedUpload,
    decided_by: str,
    notifier: Notifier | None = None,
) -> BrandRequestView:
    """Serve an uploaded certificate (checked with `uploads.check_upload`) on the domain.

    It is installed like a certificate issued over ACME (`install_certificate`): the edges are
    told at once, the customer is told the domain is secured, the counter and the timeline
    record it. The worker still looks after the domain: it checks its DNS, and at the stored
    renewal time (when about a third of the lifetime remains) it tries to renew it over ACME
    like any other domain, so an upload that is not replaced in time shows up as expiring
    (and, if ACME cannot take over, failing) like every other certificate.
    """
    with store.session() as session:
        row = _get(session, request_id)
        _require(row, UPLOADABLE, "completed with a certificate")
        domain = _brand_domain(session, row)
        certificate = store_upload(session, keys, domain, upload)
        _decide(row, BrandRequestStatus.UPLOADED, decided_by)
        install_certificate(
            session,
            domain,
            certificate,
            notifier=notifier,
            event="certificate_uploaded",
            message=f"A certificate issued by {certificate.issuer} was uploaded by "
            f"{row.decided_by}; valid until {certificate.not_after:%Y-%m-%d %H:%M} UTC.",
            request_id=row.id,
        )
        return _view(session, row)


# --- what the API, the pages and the CLI do with the queue -----------------------------------
# The same use cases behind every front end, refusing with `Refused` in the same words.


def _request_not_found(request_id: int) -> Refused:
    return Refused(404, "not-found", f"There is no brand domain request {request_id}.")


def _closed(exc: RequestClosed) -> Refused:
    return Refused(
        409,
        "request-closed",
        sentence(str(exc)),
        fix="Reload the queue: someone else may have decided it already.",
    )


def submit_brand_request(
    store: Store,
    settings: Settings,
    policy: NamePolicy,
    account_id: int,
    domain: str,
    note: str,
) -> BrandRequestView:
    """Queue an account's request and tell the deliverability team."""
    try:
        view = request_brand_domain(
            store, account_id, domain, note, policy, max_open=settings.brand_requests_open_max
        )
    except TooManyOpenRequests as exc:
        raise Refused(
            409,
            "too-many-open-requests",
            sentence(str(exc)),
            fix="Wait for an answer to the requests you have made; they are listed on the "
            "account page.",
            extra={"limit": exc.limit},
        ) from None
    except DomainNameError as exc:
        raise Refused(
            422,
            "invalid-domain",
            exc.message,
            code=exc.code,
            fix="Enter the host name the brand's links will use, such as links.brand.example.",
        ) from None
    except NotFound:
        raise Refused(404, "not-found", f"There is no account {account_id}.") from None
    except (Conflict, IntegrityError) as exc:
        raise Refused(
            409,
            "conflict",
            sentence(str(exc)),
            fix="Choose another domain; if it is yours, contact support.",
        ) from None
    except ValueError as exc:
        raise Refused(422, "validation-error", sentence(str(exc))) from None
    notify_brand_request(store, settings, view)
    return view


def approve(
    store: Store, request_id: int, decided_by: str, wake: Callable[[], None] | None = None
) -> BrandRequestView:
    """Approve a request; `wake` starts an in-process worker on the domain at once."""
    try:
        view = approve_brand_request(store, request_id, decided_by)
    except NotFound:
        raise _request_not_found(request_id) from None
    except RequestClosed as exc:
        raise _closed(exc) from None
    except Conflict as exc:
        raise Refused(409, "conflict", sentence(str(exc))) from None
    if wake is not None:
        wake()
    return view


def reject(store: Store, request_id: int, decided_by: str) -> BrandRequestView:
    """Reject a waiting request."""
    try:
        return reject_brand_request(store, request_id, decided_by)
    except NotFound:
        raise _request_not_found(request_id) from None
    except RequestClosed as exc:
        raise _closed(exc) from None


def keys_to_store_with(settings: Settings) -> MasterKeys:
    """The master keys a private key sent by someone is stored under; refused without one."""
    try:
        return MasterKeys.from_settings(settings)
    except MasterKeyError:
        raise Refused(
            503,
            "uploads-unavailable",
            "No master key is configured, so an uploaded private key could not be stored.",
            fix="Set LINKCERT_MASTER_KEY (the key the worker stores certificate keys with).",
        ) from None


@dataclass(frozen=True)
class Uploaded:
    """A request completed with an uploaded certificate, and whether that certificate chains to
    a public root (False: only to a private CA root from `upload_ca_bundle`)."""

    view: BrandRequestView
    publicly_trusted: bool


def upload(
    store: Store,
    settings: Settings,
    request_id: int,
    certificate_pem: str | bytes,
    key_pem: str | bytes,
    decided_by: str,
) -> Uploaded:
    """Check a certificate and key against the requested domain, then install and serve them."""
    keys = keys_to_store_with(settings)
    try:
        domain = request_domain_name(store, request_id)
        checked = check_upload(
            certificate_pem,
            key_pem,
            domain,
            private_roots=private_roots_from(settings.upload_ca_bundle),
        )
        view = complete_with_upload(
            store, keys, request_id, checked, decided_by, Notifier.from_settings(settings)
        )
        return Uploaded(view, checked.publicly_trusted)
    except NotFound:
        raise _request_not_found(request_id) from None
    except UploadError as exc:
        raise Refused(
            422,
            "invalid-certificate",
            str(exc),
            fix="Correct the files and upload them again; nothing was stored.",
        ) from None
    except RequestClosed as exc:
        raise _closed(exc) from None
    except Conflict as exc:
        raise Refused(409, "conflict", sentence(str(exc))) from None
