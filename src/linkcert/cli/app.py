"""The Typer application every command module attaches to, and what commands share.

Commands read the same settings (`--config FILE`, `LINKCERT_<NAME>` variables) and report
problems as one plain line on stderr with a stable exit code: 0 done, 1 the answer is "no"
(for example a domain that is not ready), 2 bad input, usage or configuration.

Nothing heavy is imported at module level here or in the command modules: `linkcert --help`
and the short commands scripts call in loops start in a fraction of a second, and each command
imports what it needs (the store, the DNS checker, the service) when it runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

from linkcert.cli.coercion import install as install_plain_coercion

if TYPE_CHECKING:
    from rich.console import Console

    from linkcert.config import Settings
    from linkcert.config_sources import BasicSettings
    from linkcert.store import Store
    from linkcert.store.reader import StatusReader

install_plain_coercion()

app = typer.Typer(
    name="linkcert",
    help="Automatic HTTPS for customers' link tracking domains.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2


def _safe_console(stderr: bool) -> Console:
    """A console that never writes a control character from a value to the terminal.

    Every string it prints (messages, table cells) passes through `printable` before Rich
    reads it, so an ESC, a NUL or a right-to-left override stored in a name or a note shows
    as `\\x1b`, `\\x00` or `\\u202e` instead of acting on the operator's terminal. Rich's own
    styling is added afterwards and is not affected.
    """
    from rich.console import Console

    from linkcert.text import printable

    class SafeConsole(Console):
        def render_str(self, text: str, *args: Any, **kwargs: Any) -> Any:
            return super().render_str(printable(text), *args, **kwargs)

    return SafeConsole(stderr=stderr)


class _ConsoleOnUse:
    """The safe console, made (and Rich imported) on first use: Rich takes longer to import
    than a command printing JSON takes to run."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            self._console = _safe_console(self._stderr)
        return getattr(self._console, name)


console = cast("Console", _ConsoleOnUse(stderr=False))
err_console = cast("Console", _ConsoleOnUse(stderr=True))


def escape(text: str) -> str:
    """`text` made safe to put in Rich markup (Rich's own escape, imported on use)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def plain_table(*headers: str, **options: Any) -> Any:
    """A Rich table whose string cells are shown as they are: never read as markup (a stored
    `[/]` is text, not a tag) and with hidden characters escaped."""
    from rich.table import Table
    from rich.text import Text

    from linkcert.text import printable

    class PlainTable(Table):
        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            cells = [Text(printable(r)) if isinstance(r, str) else r for r in renderables]
            super().add_row(*cells, **kwargs)

    return PlainTable(*headers, **options)


_config_file: Path | None = None


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML settings file (or LINKCERT_CONFIG)."),
    ] = None,
) -> None:
    """Automatic HTTPS for customers' link tracking domains."""
    global _config_file
    _config_file = config


def config_file() -> Path | None:
    """The --config file given to this invocation, to pass on to child processes."""
    return _config_file


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one plain line on stderr and exit with `code`."""
    err_console.print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True, soft_wrap=True
    )
    raise typer.Exit(code)


def settings(**overrides: Any) -> Settings:
    """The effective settings, or a clean exit 2 naming the bad one."""
    from linkcert.config import ConfigError, load_settings

    try:
        return load_settings(_config_file, overrides)
    except ConfigError as exc:
        fail(str(exc))


def basic_settings() -> BasicSettings:
    """The few settings the short commands use, read without the settings model (see
    linkcert.config_sources), or a clean exit 2 naming the bad one."""
    from linkcert.config_sources import ConfigError, basic_settings

    try:
        return basic_settings(_config_file)
    except ConfigError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def user_errors(*kinds: type[Exception]) -> Iterator[None]:
    """Turn the listed exception types into a clean error line and exit 2."""
    try:
        yield
    except kinds as exc:
        fail(str(exc))


def open_store(current: Settings | BasicSettings) -> Store:
    """The store, which must exist at the current schema: only `linkcert migrate` (and
    `linkcert serve`, on SQLite) create or upgrade it. Otherwise one line and exit 2."""
    from linkcert.store import Store, StoreError

    try:
        store = Store(current.effective_database_url)
        store.check_ready()
    except StoreError as exc:
        fail(str(exc))
    return store


def open_reader(current: BasicSettings) -> StatusReader | None:
    """A lean reader of domains' status (no SQLAlchemy), checked as `open_store` checks the
    store; None when the database URL is one only the store reads."""
    from linkcert.redact import masked_url
    from linkcert.store.reader import open_reader as open_status_reader
    from linkcert.store.schema import StoreError

    url = current.effective_database_url
    try:
        return open_status_reader(url, masked_url(url))
    except StoreError as exc:
        fail(str(exc))
