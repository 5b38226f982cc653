"""The operator docs are complete: every setting in docs/configuration.md, every endpoint of the
REST API in docs/api.md, every package of src/linkcert in the README's package list.

(tests/test_docs_settings.py checks the other way round: that the docs name only real settings.)
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.routing import APIRoute

from linkcert.api import create_app
from linkcert.config import Settings
from linkcert.store import Store

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_configuration_reference() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = "\n".join(line for line in text.splitlines() if line.startswith("| `"))
    named = set(re.findall(r"`([a-z][a-z0-9_]*)`", rows))
    assert [name for name in Settings.model_fields if name not in named] == []


def test_every_endpoint_is_in_the_api_reference(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'api.sqlite3'}")
    store.migrate()
    app = create_app(store, Settings(), rate_limit=None)
    store.close()
    endpoints = {
        f"{method} {route.path}"
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in route.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    text = (ROOT / "docs" / "api.md").read_text()
    # The docs write a path parameter as {id} or {name} whatever the code calls it.
    documented = {
        re.sub(r"\{[^}]+\}", "{}", found)
        for found in re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /api/\S+)`", text)
    }
    missing = sorted(e for e in endpoints if re.sub(r"\{[^}]+\}", "{}", e) not in documented)
    assert missing == []


def test_every_package_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"one module or package per concept \(([^)]*)\)", readme)
    assert listed is not None
    names = set(re.findall(r"`([a-z_]+)`", listed.group(1)))
    source = ROOT / "src" / "linkcert"
    packages = {p.name for p in source.iterdir() if (p / "__init__.py").exists()}
    assert sorted(packages - names) == []
