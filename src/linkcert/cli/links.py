"""`linkcert link create DOMAIN URL`: mint a tracked link for scripts."""

from __future__ import annotations

from typing import Annotated

import typer

from linkcert.cli.app import app, console, fail, open_store, print_json, settings

link_app = typer.Typer(help="Tracked links.", no_args_is_help=True)
app.add_typer(link_app, name="link")


@link_app.command("create")
def link_create(
    domain: Annotated[str, typer.Argument(help="The link tracking domain.")],
    url: Annotated[str, typer.Argument(help="Where the link leads (http or https URL).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Mint a tracked link https://DOMAIN/c/<token> that redirects to URL."""
    from linkcert.config import ConfigError
    from linkcert.domains import NotFound
    from linkcert.links import create_link
    from linkcert.service.runtime import tracking_key
    from linkcert.tracking import InvalidDestination

    current = settings()
    try:
        key = tracking_key(current)
    except ConfigError as exc:
        fail(str(exc))
    store = open_store(current)
    try:
        link = create_link(store, key, domain, url)
    except (InvalidDestination, NotFound) as exc:
        fail(str(exc))
    if as_json:
        print_json(
            {
                "link_id": link.link_id,
                "domain": link.domain,
                "url": link.url,
                "open_url": link.open_url,
                "destination": link.destination,
            }
        )
    else:
        console.print(link.url, highlight=False, soft_wrap=True)
