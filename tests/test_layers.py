"""The layers import-linter enforces (pyproject.toml, `make lint`) cover every module."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path


def test_every_package_and_module_has_a_place_in_the_layers() -> None:
    """A new top-level module outside the contract would not be held to it: name it there."""
    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    placed = {
        name.strip().removeprefix("linkcert.")
        for layer in layers
        for name in layer.replace("|", ":").split(":")
    }
    source = root / "src" / "linkcert"
    present = {
        path.stem for path in source.glob("*.py") if path.stem not in ("__init__", "__main__")
    } | {path.name for path in source.iterdir() if (path / "__init__.py").exists()}
    assert sorted(present - placed) == []


def test_tests_take_their_helpers_from_support_modules() -> None:
    """Helpers live in tests/*_support.py, conftest.py or linkcert.testbed, never in a test_*
    module another test imports (which would run its tests' imports, and hide the helper)."""
    tests = Path(__file__).resolve().parent
    imports = re.compile(r"^\s*(from tests\.test_\w+ import|import tests\.test_)", re.MULTILINE)
    offenders = [
        path.name for path in sorted(tests.glob("*.py")) if imports.search(path.read_text())
    ]
    assert offenders == []
