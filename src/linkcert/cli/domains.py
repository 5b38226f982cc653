"""Commands for scripts and operators: accounts and their link tracking domains."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from linkcert.cli.app import (
    EXIT_NO,
    app,
    basic_settings,
    console,
    escape,
    fail,
    open_reader,
    open_store,
    plain_table,
    print_json,
    settings,
)
from linkcert.states import (
    CERT_STATE_TEXT,
    DCV_STATE_TEXT,
    DNS_STATE_TEXT,
    SECURED_IN_ADVANCE,
    CertState,
    DcvState,
    DnsState,
    FailureClass,
)

if TYPE_CHECKING:
    from linkcert.status import DomainStatus
    from linkcert.store import Store
    from linkcert.store.reader import StatusReader

account_app = typer.Typer(help="Customer accounts.", no_args_is_help=True)
domain_app = typer.Typer(help="Link tracking domains.", no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(domain_app, name="domain")

FINAL_CERT_STATES = {CertState.ACTIVE, CertState.REVOKED}


@account_app.command("create")
def account_create(
    name: str,
    email: Annotated[list[str] | None, typer.Option("--email", help="Contact address.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a customer account."""
    from linkcert.domains import Conflict, create_account

    store = open_store(settings())
    try:
        account = create_account(store, name, email or [])
    except (ValueError, Conflict) as exc:
        fail(str(exc))
    if as_json:
        print_json({"id": account.id, "name": account.name, "emails": account.contact_emails})
    else:
        console.print(f"account {escape(repr(account.name))} created (id {account.id})")


@domain_app.command("set")
def domain_set(
    account: Annotated[str, typer.Argument(help="Account name or id.")],
    domain: Annotated[str, typer.Argument(help="The link tracking domain.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Set an account's link tracking domain; linkcert secures it once DNS names the account.

    Prints the DNS records that prove the domain is this account's.
    """
    from linkcert.domains import (
        Conflict,
        NotFound,
        TooManyClaims,
        domain_status_for,
        find_account,
        set_tracking_domain,
    )
    from linkcert.names import DomainNameError, NamePolicy
    from linkcert.ownership import ClaimPolicy, dcv_record, proof_records

    current = settings()
    store = open_store(current)
    policy = NamePolicy.from_settings(current)
    try:
        saved = set_tracking_domain(
            store, account, domain, policy, ClaimPolicy.from_settings(current)
        )
        owner = saved.account_id
        with store.session() as session:
            account_id = find_account(session, account).id
        status = domain_status_for(store, saved.name, account_id)
    except DomainNameError as exc:
        fail(exc.message)
    except (NotFound, Conflict, TooManyClaims) as exc:
        fail(str(exc))
    label = status.dns_label or ""
    records = proof_records(current.cname_targets, current.edge_addresses, saved.name, label)
    if current.dcv_zone and status.dcv_label:
        # The delegation first: added before the CNAME, it secures the name before the switch.
        records.insert(0, dcv_record(saved.name, current.dcv_zone, status.dcv_label))
    if as_json:
        print_json({**_json(status), "dns_records": [r.to_json() for r in records]})
        return
    if owner == account_id:
        console.print(
            f"{status.unicode_name} saved for account {status.account!r}; securing it now"
        )
        return
    console.print(
        f"{status.unicode_name} claimed for account {status.account!r}; it becomes the "
        "account's once its DNS has these records (the TXT record alone is enough at a "
        "domain's root):",
        highlight=False,
    )
    for record in records:
        console.print(f"  {record.zone_line()}", highlight=False, markup=False)


def _json(status: DomainStatus) -> dict[str, object]:
    """The status as the API gives it: its fields, the states in words and the waiting note."""
    data = status.to_json()
    data["cert_state_text"] = CERT_STATE_TEXT.get(CertState(status.cert_state), status.cert_state)
    data["cert_state_note"] = status.note(datetime.now(UTC))
    return data


def _show(status: DomainStatus) -> None:
    console.print(f"[bold]{status.unicode_name}[/]  (account {escape(status.account or '-')})")
    dns = DNS_STATE_TEXT.get(DnsState(status.dns_state), status.dns_state)
    if status.secured_in_advance:
        dns = SECURED_IN_ADVANCE
    console.print(f"  DNS:         {dns}", soft_wrap=True)
    if status.dcv_state is not None:
        delegation = DCV_STATE_TEXT.get(DcvState(status.dcv_state), status.dcv_state)
        console.print(f"  Delegation:  {delegation}", soft_wrap=True)
    console.print(
        f"  Certificate: {CERT_STATE_TEXT.get(CertState(status.cert_state), status.cert_state)}"
    )
    note = status.note(datetime.now(UTC))
    if note:
        console.print(f"  Waiting:     {note}", soft_wrap=True)
    if status.not_after:
        console.print(f"  Expires:     {status.not_after:%Y-%m-%d %H:%M} UTC  ({status.issuer})")
    if status.ca and status.ca_reason:
        console.print(f"  CA:          {status.ca}  ({status.ca_reason})", soft_wrap=True)
    if status.renew_at and status.wanted:
        basis = "suggested by the CA" if status.renewal_basis == "ari" else "by its lifetime"
        console.print(f"  Renews:      {status.renew_at:%Y-%m-%d %H:%M} UTC  ({basis})")
    if status.next_attempt_at:
        console.print(f"  Next check:  {status.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC")
    for warning in status.warnings:
        console.print(f"  [yellow]warning:[/] {escape(warning['message'])}", soft_wrap=True)
        console.print(f"    {escape(warning['fix'])}", soft_wrap=True)
    for problem in status.problems:
        console.print(f"  [yellow]problem:[/] {escape(problem.get('message', ''))}")
        if problem.get("fix"):
            console.print(f"    fix: {escape(problem['fix'])}")


@domain_app.command("status")
def domain_status_cmd(
    domain: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Wait up to SECONDS for the domain to be secured.")
    ] = 0.0,
    events: Annotated[bool, typer.Option("--events", help="Include the event timeline.")] = False,
) -> None:
    """Show where a domain stands. With --wait, exit 1 unless it is secured in time."""
    from linkcert.status import NotFound

    read = _status_source(domain)
    try:
        status = read.status()
        if wait > 0:
            deadline = time.monotonic() + wait
            with console.status(f"waiting for {status.unicode_name}…") as spinner:
                while status.cert_state not in FINAL_CERT_STATES and time.monotonic() < deadline:
                    time.sleep(0.25)
                    status = read.status()
                    spinner.update(
                        f"{status.unicode_name}: DNS {status.dns_state}, "
                        f"certificate {status.cert_state}"
                    )
        timeline = read.events() if events else []
    except NotFound as exc:
        fail(str(exc))
    finally:
        read.close()
    if as_json:
        data = _json(status)
        if events:
            data["events"] = timeline
        print_json(data)
    else:
        _show(status)
        for event in timeline:
            console.print(f"  {event['at']}  {event['kind']:<16} {event['message']}")
    if wait > 0 and status.cert_state != CertState.ACTIVE:
        raise typer.Exit(EXIT_NO)


class _StatusSource:
    """One domain's status and events, read by the lean reader (SQLite, PostgreSQL with
    psycopg) or, for another database URL, by the store."""

    def __init__(self, domain: str, reader: StatusReader | None, store: Store | None) -> None:
        self.domain, self._reader, self._store = domain, reader, store

    def status(self) -> DomainStatus:
        if self._reader is not None:
            return self._reader.domain_status(self.domain)
        from linkcert.domains import domain_status

        assert self._store is not None
        return domain_status(self._store, self.domain)

    def events(self) -> list[dict[str, Any]]:
        if self._reader is not None:
            return self._reader.domain_events(self.domain)
        from linkcert.domains import domain_events

        assert self._store is not None
        return domain_events(self._store, self.domain)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def _status_source(domain: str) -> _StatusSource:
    current = basic_settings()
    reader = open_reader(current)
    return _StatusSource(domain, reader, open_store(current) if reader is None else None)


LIST_PAGE = 500


@domain_app.command("list")
def domain_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="At most this many domains (0: all).")
    ] = 0,
    after: Annotated[str, typer.Option("--after", help="Start after this name.")] = "",
    dns_state: Annotated[
        DnsState | None, typer.Option("--dns-state", help="Only domains in this DNS state.")
    ] = None,
    cert_state: Annotated[
        CertState | None,
        typer.Option("--cert-state", help="Only domains in this certificate state."),
    ] = None,
    failure_class: Annotated[
        FailureClass | None,
        typer.Option("--failure-class", help="Only domains whose last attempt failed so."),
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account's (name or id).")
    ] = None,
    prefix: Annotated[
        str, typer.Option("--prefix", help="Only names starting with this (ASCII form).")
    ] = "",
) -> None:
    """List domains in name order with their DNS and certificate state.

    Read and printed a page at a time, so any number of domains lists in bounded memory. With
    --limit, the last line (on stderr) says how to go on (--after).
    """
    from linkcert.domains import DomainQuery, NotFound, find_account, find_domains

    store = open_store(settings())
    owner = None
    if account is not None:
        with store.session() as session:
            try:
                owner = find_account(session, account).id
            except NotFound as exc:
                fail(str(exc))
    query = DomainQuery.of(dns_state, cert_state, failure_class, owner, prefix)
    shown = 0
    last = after
    more = False
    if as_json:
        sys.stdout.write("[")
    while True:
        size = LIST_PAGE if not limit else min(LIST_PAGE, limit - shown)
        page = find_domains(store, after=last, limit=size + 1, query=query)
        more = len(page) > size
        page = page[:size]
        if as_json:
            for status in page:
                text = json.dumps(_json(status), indent=2, sort_keys=True, default=str)
                sys.stdout.write(("," if shown else "") + "\n  " + text.replace("\n", "\n  "))
                shown += 1
        elif page:
            table = plain_table(
                "domain", "account", "DNS", "certificate", "expires", show_header=not shown
            )
            for s in page:
                expires = f"{s.not_after:%Y-%m-%d}" if s.not_after else "-"
                table.add_row(s.unicode_name, s.account or "-", s.dns_state, s.cert_state, expires)
            console.print(table)
            shown += len(page)
        if page:
            last = page[-1].domain
        if not more or (limit and shown >= limit):
            break
    if as_json:
        sys.stdout.write("\n]\n" if shown else "]\n")
    if more:
        print(f"more domains follow: --after {last}", file=sys.stderr)


@domain_app.command("delete")
def domain_delete(
    domain: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete a domain: revoke its certificate and erase its keys (links stop working)."""
    from linkcert.domains import NotFound, delete_domain

    store = open_store(settings())
    if not yes and not typer.confirm(
        f"Revoke the certificate of {domain} and erase its keys? Its links stop working."
    ):
        raise typer.Exit(EXIT_NO)
    try:
        status = delete_domain(store, domain)
    except NotFound as exc:
        fail(str(exc))
    if as_json:
        print_json(_json(status))
    else:
        console.print(f"{status.unicode_name} will be deleted by the worker in a moment")
