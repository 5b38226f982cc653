"""The `linkcert` command line.

Each concept registers its commands from its own module; this module only assembles them and
turns any unexpected error into a clear message and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from linkcert.cli import admin as _admin  # noqa: F401  (registers config, keys, migrate)
from linkcert.cli import check as _check  # noqa: F401  (registers `linkcert check`)
from linkcert.cli import console as _console  # noqa: F401  (registers brand, domain retry)
from linkcert.cli import deliveries as _deliveries  # noqa: F401  (registers deliveries)
from linkcert.cli import domains as _domains  # noqa: F401  (registers account, domain)
from linkcert.cli import links as _links  # noqa: F401  (registers link)
from linkcert.cli import serve as _serve  # noqa: F401  (registers serve, demo)
from linkcert.cli import tokens as _tokens  # noqa: F401  (registers token)
from linkcert.cli.app import app


def main() -> None:
    """Entry point of the `linkcert` script."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main", "typer"]
