"""Commands for API tokens: make one (shown once), list them, revoke one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from linkcert.cli.app import (
    app,
    console,
    err_console,
    fail,
    open_store,
    plain_table,
    print_json,
    settings,
)

if TYPE_CHECKING:
    from linkcert.store import ApiToken, Store

token_app = typer.Typer(help="API tokens for the REST API.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _token_json(row: ApiToken, account: str | None) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "account_id": row.account_id,
        "account": account,
        "operator": row.kind == "operator",
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "revoked_at": iso(row.revoked_at),
    }


def _account_names(store: Store, rows: list[ApiToken]) -> dict[int, str]:
    from linkcert.domains import account_summary

    ids = {row.account_id for row in rows if row.account_id is not None}
    return {account_id: account_summary(store, account_id).name for account_id in ids}


@token_app.command("create")
def token_create(
    account: Annotated[
        str | None, typer.Option("--account", help="Account name or id the token acts for.")
    ] = None,
    operator: Annotated[
        bool, typer.Option("--operator", help="An operator token, which may do everything.")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="What the token is for, to tell it apart.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Make an API token and print it. It is shown this once: linkcert keeps only its hash."""
    from linkcert.auth import create_token
    from linkcert.domains import NotFound, account_summary

    # Exactly one of the two, so that a forgotten --account never yields an operator token.
    if (account is None) == (not operator):
        fail("give either --account ACCOUNT or --operator")
    store = open_store(settings())
    label = name or ("operator" if operator else f"account {account}")
    try:
        plain, row = create_token(store, account, label)
    except (NotFound, ValueError) as exc:
        fail(str(exc))
    owner = None if row.account_id is None else account_summary(store, row.account_id).name
    if as_json:
        print_json({**_token_json(row, owner), "token": plain})
        return
    # The token alone on stdout, so that `TOKEN=$(linkcert token create ...)` works.
    typer.echo(plain)
    whose = "an operator token" if owner is None else f"a token for account {owner!r}"
    err_console.print(
        f"made {whose} (id {row.id}, {row.name!r}); store it now, it is not shown again",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@token_app.command("list")
def token_list(
    account: Annotated[
        str | None, typer.Option("--account", help="Only this account's tokens.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List API tokens (never the tokens themselves: only their first characters)."""

    from linkcert.auth import list_tokens
    from linkcert.domains import NotFound

    store = open_store(settings())
    try:
        rows = list_tokens(store, account)
    except NotFound as exc:
        fail(str(exc))
    names = _account_names(store, rows)
    if as_json:
        print_json([_token_json(r, names.get(r.account_id or 0)) for r in rows])
        return
    table = plain_table("id", "prefix", "name", "for", "created", "last used", "state")
    for r in rows:
        owner = "operator" if r.kind == "operator" or r.account_id is None else names[r.account_id]
        used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
        state = f"revoked {r.revoked_at:%Y-%m-%d}" if r.revoked_at else "active"
        table.add_row(
            str(r.id), r.prefix + "…", r.name, owner, f"{r.created_at:%Y-%m-%d}", used, state
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The token's id.")]) -> None:
    """Revoke an API token for good."""
    from linkcert.auth import revoke_token
    from linkcert.domains import NotFound

    store = open_store(settings())
    try:
        row = revoke_token(store, token_id)
    except NotFound as exc:
        fail(str(exc))
    console.print(
        f"token {row.id} ({row.name!r}) is revoked", highlight=False, soft_wrap=True, markup=False
    )
