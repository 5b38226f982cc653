"""Commands for the deliverability team: the brand domain queue, and forced retries.

    linkcert brand list [--status requested] [--json]
    linkcert brand approve ID
    linkcert brand reject ID
    linkcert brand upload ID --cert chain.pem --key key.pem
    linkcert domain retry NAME

Exit codes, as everywhere: 0 done; 1 refused for the state things are in (the request was
already decided, the domain is detached, the CA asked to wait, another account holds the
name); 2 wrong input (no such request or domain, an unreadable or unusable certificate or
key, bad settings). The worker notices approvals and retries at its next poll.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from linkcert.cli.app import (
    EXIT_NO,
    app,
    console,
    fail,
    open_store,
    plain_table,
    print_json,
    settings,
)
from linkcert.cli.domains import domain_app
from linkcert.refusals import Refused
from linkcert.states import BrandRequestStatus

if TYPE_CHECKING:
    from linkcert.brand import BrandRequestView

brand_app = typer.Typer(
    help="Brand link tracking domain requests: the deliverability team's queue.",
    no_args_is_help=True,
)
app.add_typer(brand_app, name="brand")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RequestArgument = Annotated[int, typer.Argument(help="The request's id (see `brand list`).")]


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _refused(message: str) -> NoReturn:
    # Same look as fail(), with the "refused" exit code.
    fail(message, EXIT_NO)


def _report(view: BrandRequestView, as_json: bool, said: str) -> None:
    if as_json:
        print_json(view.to_json())
    else:
        console.print(said, highlight=False, soft_wrap=True, markup=False)


@brand_app.command("list")
def brand_list(
    status: Annotated[
        BrandRequestStatus | None, typer.Option("--status", help="Only requests in this status.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List brand domain requests, oldest first."""

    from linkcert.brand import list_brand_requests

    store = open_store(settings())
    views = list_brand_requests(store, status=status.value if status else None, limit=100_000)
    if as_json:
        print_json([view.to_json() for view in views])
        return
    table = plain_table()
    table.add_column("id")
    # Whole domain names, so they can be copied; the other columns wrap instead.
    table.add_column("domain", no_wrap=True)
    for heading in ("account", "status", "requested", "decided", "note"):
        table.add_column(heading)
    for view in views:
        decided = f"{view.decided_at:%Y-%m-%d} by {view.decided_by}" if view.decided_at else "-"
        table.add_row(
            str(view.id),
            view.unicode_name,
            view.account,
            view.status,
            f"{view.created_at:%Y-%m-%d %H:%M}",
            decided,
            view.note or "-",
        )
    console.print(table)


def _answer(refusal: Refused) -> NoReturn:
    # The use cases' one error type: a clash with the state things are in is "refused" (1),
    # anything else (no such request, a bad file, no master key) is wrong input (2).
    message = refusal.message + (f" {refusal.fix}" if refusal.fix else "")
    if refusal.status == 409:
        _refused(message)
    fail(message)


@brand_app.command("approve")
def brand_approve(request_id: RequestArgument, as_json: JsonOption = False) -> None:
    """Approve a request: the domain is then secured automatically, like any other."""
    from linkcert.brand import approve

    store = open_store(settings())
    try:
        view = approve(store, request_id, _who())
    except Refused as exc:
        _answer(exc)
    _report(view, as_json, f"request {view.id} approved: {view.unicode_name} is being secured")


@brand_app.command("reject")
def brand_reject(request_id: RequestArgument, as_json: JsonOption = False) -> None:
    """Reject a waiting request."""
    from linkcert.brand import reject

    store = open_store(settings())
    try:
        view = reject(store, request_id, _who())
    except Refused as exc:
        _answer(exc)
    _report(view, as_json, f"request {view.id} ({view.unicode_name}) rejected")


def _read(path: Path, what: str) -> bytes:
    from linkcert.uploads import MAX_UPLOAD_BYTES

    try:
        with path.open("rb") as handle:
            return handle.read(MAX_UPLOAD_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read the {what} {path}: {exc.strerror}")


@brand_app.command("upload")
def brand_upload(
    request_id: RequestArgument,
    cert: Annotated[
        Path, typer.Option("--cert", help="PEM: the domain's certificate, then intermediates.")
    ],
    key: Annotated[Path, typer.Option("--key", help="PEM private key, without passphrase.")],
    as_json: JsonOption = False,
) -> None:
    """Complete a request with a certificate and key obtained elsewhere; served at once."""
    from linkcert.brand import upload
    from linkcert.domains import domain_status

    current = settings()
    chain_pem = _read(cert, "certificate file")
    key_pem = _read(key, "private key file")
    store = open_store(current)
    try:
        uploaded = upload(store, current, request_id, chain_pem, key_pem, _who())
    except Refused as exc:
        _answer(exc)
    view = uploaded.view
    served = domain_status(store, view.domain)
    _report(
        view,
        as_json,
        f"request {view.id}: {view.unicode_name} now serves the certificate issued by "
        f"{served.issuer}, valid until {served.not_after:%Y-%m-%d %H:%M} UTC"
        + ("" if uploaded.publicly_trusted else " (private CA: not publicly trusted)"),
    )


@domain_app.command("retry")
def domain_retry(
    name: Annotated[str, typer.Argument(help="The domain, in any form.")],
    as_json: JsonOption = False,
) -> None:
    """Check DNS and retry the certificate now instead of at the next scheduled attempt."""
    from linkcert.domains import Conflict, NotFound, TooEarly, retry_now

    store = open_store(settings())
    try:
        status = retry_now(store, name)
    except NotFound as exc:
        fail(str(exc))
    except (Conflict, TooEarly) as exc:
        _refused(str(exc))
    if as_json:
        print_json(status.to_json())
    else:
        console.print(
            f"{status.unicode_name}: retrying now (the worker picks it up at its next poll)",
            highlight=False,
            soft_wrap=True,
        )
