"""`linkcert deliveries list`: the delivery log of alert emails and webhooks."""

from __future__ import annotations

from typing import Annotated

import typer

from linkcert.cli.app import app, console, fail, open_store, plain_table, print_json, settings

deliveries_app = typer.Typer(
    help="Alert deliveries (email and webhooks) and how they went.", no_args_is_help=True
)
app.add_typer(deliveries_app, name="deliveries")


@deliveries_app.command("list")
def deliveries_list(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or failed.")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="email or webhook.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="Only this domain's.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List deliveries, newest first."""

    from linkcert.notify.log import CHANNELS, STATUSES, list_deliveries

    if status is not None and status not in STATUSES:
        fail(f"--status takes one of: {', '.join(STATUSES)}")
    if channel is not None and channel not in CHANNELS:
        fail(f"--channel takes one of: {', '.join(CHANNELS)}")
    store = open_store(settings())
    records = list_deliveries(store, status=status, channel=channel, domain=domain, limit=limit)
    if as_json:
        print_json([r.to_json() for r in records])
        return
    table = plain_table(
        "id", "created", "type", "domain", "to", "status", "tries", "next / done", "error"
    )
    for r in records:
        when = r.delivered_at or r.next_attempt_at
        table.add_row(
            str(r.id),
            f"{r.created_at:%Y-%m-%d %H:%M}",
            r.type,
            r.domain,
            r.target,
            r.status,
            str(r.attempts),
            f"{when:%Y-%m-%d %H:%M:%S}" if when else "",
            r.last_error or "",
        )
    console.print(table)
