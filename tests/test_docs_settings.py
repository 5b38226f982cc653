"""The docs name only settings that exist.

The convention in docs/ (and the README): a setting is written as its variable,
`LINKCERT_DNS_TIMEOUT`, or as its name in backticks, `dns_timeout`. So every `LINKCERT_*`
name must be a setting, and every backticked snake_case name must be a setting or one of the
names linkcert itself shows (a state, a problem code, a JSON field, an event kind, a metric:
a string the code uses outside docstrings), a function of its Python API, or one of the few
outside names listed below. A name only a Python keyword argument or an internal field has
(say `max_body_bytes`) fails, as an operator would look for it in the settings.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

from linkcert.config import ENV_PREFIX, AcmeCa, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
# A CA's entry in `acme_cas` has settings of its own.
SETTINGS = frozenset(Settings.model_fields) | frozenset(AcmeCa.model_fields)

# Variables that are not settings but are read by linkcert or its tests.
OTHER_VARIABLES = {"LINKCERT_CONFIG", "LINKCERT_TEST_POSTGRES_URL"}
# Names from outside linkcert that the docs mention in backticks.
OUTSIDE_NAMES = {
    "max_connections",  # PostgreSQL's settings
    "default_transaction_read_only",
    "python_info",  # the Prometheus client's own series
    "is_operator",  # an attribute of the API's principal, in the embedding section
    "message_id",  # the AMQP message property events are published with
}

_VARIABLE = re.compile(r"\bLINKCERT_[A-Z0-9_]*[A-Z0-9]\b")
_BACKTICKED = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`")


def _docs_text() -> list[tuple[str, str]]:
    return [(path.relative_to(ROOT).as_posix(), path.read_text()) for path in DOCS]


@cache
def _names_the_code_uses() -> frozenset[str]:
    """Strings in the source (outside docstrings), and the names of functions and classes."""
    found: set[str] = set()
    for path in (ROOT / "src" / "linkcert").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) not in docstrings:
                    found.add(node.value)
            elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                found.add(node.name)
    return frozenset(found)


def _known(name: str) -> bool:
    if name in SETTINGS or name in OUTSIDE_NAMES:
        return True
    code = _names_the_code_uses()
    # Counters are exposed with Prometheus's `_total` suffix.
    return name in code or (name.endswith("_total") and name.removesuffix("_total") in code)


def test_every_linkcert_variable_in_the_docs_is_a_setting() -> None:
    unknown = sorted(
        f"{where}: {variable}"
        for where, text in _docs_text()
        for variable in set(_VARIABLE.findall(text))
        if variable not in OTHER_VARIABLES
        and variable.removeprefix(ENV_PREFIX).lower() not in SETTINGS
    )
    assert unknown == []


def test_every_setting_like_name_in_the_docs_is_a_setting_or_a_name_linkcert_shows() -> None:
    unknown = sorted(
        f"{where}: `{name}`"
        for where, text in _docs_text()
        for name in set(_BACKTICKED.findall(text))
        if not _known(name)
    )
    assert unknown == []


@pytest.mark.parametrize("name", ["max_body_bytes", "rate_limit", "shutdown_timeout"])
def test_names_that_are_not_settings_are_told_apart(name: str) -> None:
    """The check itself: keyword arguments and internal fields are not settings."""
    assert not _known(name)
    assert _known("dns_timeout") and _known("points_elsewhere")
