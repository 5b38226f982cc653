"""Operator commands: settings, master keys, migrations."""

from __future__ import annotations

from typing import Annotated

import typer

from linkcert.cli.app import app, console, fail, open_store, print_json, settings, user_errors

config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
keys_app = typer.Typer(help="Master keys that encrypt private keys at rest.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(keys_app, name="keys")


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings, secrets masked."""
    print_json(settings().masked())


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[
        str | None, typer.Option("--id", help="Key id (default: a timestamp).")
    ] = None,
) -> None:
    """Print a fresh master key in the form LINKCERT_MASTER_KEY takes."""
    from linkcert.keys import MasterKeyError, generate_master_key

    with user_errors(MasterKeyError):
        typer.echo(generate_master_key(key_id))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored private key under the first (current) master key."""
    from linkcert.keys import MasterKeyError, MasterKeys
    from linkcert.keystore import rotate_all
    from linkcert.store import StoreError

    current = settings()
    with user_errors(MasterKeyError, StoreError):
        keys = MasterKeys.from_settings(current)
    store = open_store(current)
    with user_errors(MasterKeyError, StoreError):
        changed = rotate_all(store, keys)
    console.print(f"re-encrypted {changed} private keys under master key {keys.current_id!r}")


@app.command("migrate")
def migrate() -> None:
    """Create or upgrade the database schema (run once per release in fleet mode)."""
    from linkcert.store import Store, StoreError

    current = settings()
    try:
        store = Store(current.effective_database_url)
        created = store.migrate()
    except StoreError as exc:
        fail(str(exc))
    if created:
        console.print(f"created a new, empty database at {store.display_url}", soft_wrap=True)
    console.print(f"the database at {store.display_url} is at the current schema", soft_wrap=True)
