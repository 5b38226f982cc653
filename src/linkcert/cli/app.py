"""The Typer application every command module attaches to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="linkcert",
    help="Automatic HTTPS for customers' link tracking domains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Automatic HTTPS for customers' link tracking domains."""
