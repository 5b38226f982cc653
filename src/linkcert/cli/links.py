"""`linkcert link create DOMAIN URL`: mint a tracked link for scripts."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

import typer

from linkcert.cli.app import app, console, fail, open_store, print_json, settings

link_app = typer.Typer(help="Tracked links.", no_args_is_help=True)
app.add_typer(link_app, name="link")


@link_app.command("create")
def link_create(
    domain: Annotated[str, typer.Argument(help="The link tracking domain.")],
    url: Annotated[str, typer.Argument(help="Where the link leads (http or https URL).")],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Text (up to 255 bytes as UTF-8) carried in the link and in its click events.",
        ),
    ] = None,
    data_base64: Annotated[
        str | None,
        typer.Option("--data-base64", help="The same for binary data, in base64."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Mint a tracked link https://DOMAIN/c/<token> that redirects to URL."""
    from linkcert.config import ConfigError
    from linkcert.domains import NotFound
    from linkcert.links import create_link
    from linkcert.service.runtime import tracking_key
    from linkcert.tracking import InvalidDestination

    try:
        payload = _data_of(data, data_base64)
    except ValueError as exc:
        fail(str(exc))
    current = settings()
    try:
        key = tracking_key(current)
    except ConfigError as exc:
        fail(str(exc))
    store = open_store(current)
    try:
        link = create_link(store, key, domain, url, data=payload)
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
                "data_base64": base64.b64encode(link.data).decode("ascii"),
            }
        )
    else:
        console.print(link.url, highlight=False, soft_wrap=True)


def _data_of(text: str | None, encoded: str | None) -> bytes:
    from linkcert.tracking import MAX_DATA_BYTES

    if text is not None and encoded is not None:
        raise ValueError("give --data or --data-base64, not both")
    if encoded is not None:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("--data-base64 is not valid base64") from None
    else:
        data = (text or "").encode("utf-8", "surrogateescape")
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"the data is {len(data)} bytes long; the limit is {MAX_DATA_BYTES}")
    return data
