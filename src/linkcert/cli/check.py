"""`linkcert check DOMAIN`: the DNS readiness check (placeholder until it lands)."""

from __future__ import annotations

import typer

from linkcert.cli.app import app


@app.command()
def check(domain: str) -> None:
    """Check whether DOMAIN can get a certificate: CNAME and CAA."""
    typer.echo(f"not implemented yet: {domain}", err=True)
    raise typer.Exit(2)
