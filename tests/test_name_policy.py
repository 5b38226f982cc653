"""One name policy, built from the settings in one place, for every command and role."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from linkcert.config import Settings
from linkcert.names import STORED_NAMES, DomainNameError, NamePolicy, validate

SOURCE = Path(__file__).resolve().parent.parent / "src" / "linkcert"


def test_the_policy_is_the_settings() -> None:
    settings = Settings(allow_test_domains=True, platform_domains=("platform.test",))
    policy = NamePolicy.from_settings(settings)
    assert policy == NamePolicy(allow_test_domains=True, platform_domains=("platform.test",))
    assert validate("links.shop.test", policy).ascii == "links.shop.test"
    with pytest.raises(DomainNameError):
        validate("links.platform.test", policy)
    with pytest.raises(DomainNameError):
        validate("links.shop.test", NamePolicy.from_settings(Settings()))


def test_no_module_builds_a_policy_of_its_own() -> None:
    """Only names.py constructs NamePolicy: the rest take NamePolicy.from_settings(settings), or
    STORED_NAMES to read back names already saved."""
    builders = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "names.py" and path.parent == SOURCE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
                == "NamePolicy"
            ):
                builders.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert builders == []
    assert STORED_NAMES.allow_test_domains and not STORED_NAMES.platform_domains
