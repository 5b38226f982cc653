"""`linkcert domain list` reads and prints a page at a time, with the API's filters."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from linkcert.cli import app
from linkcert.cli import domains as cli_domains
from linkcert.domains import create_account
from linkcert.store import Domain, Store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("LINKCERT_"):
            monkeypatch.delenv(name)
    values = {"LINKCERT_DATA_DIR": str(tmp_path / "data"), "LINKCERT_TRACKING_KEY": "t" * 40}
    monkeypatch.setattr(cli_domains, "LIST_PAGE", 4)  # several pages from a few domains
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "data").mkdir()
    store = Store(f"sqlite:///{tmp_path / 'data' / 'linkcert.sqlite3'}")
    store.migrate()
    shop = create_account(store, "shop")
    with store.session() as session:
        for i in range(10):
            session.add(
                Domain(
                    name=f"d{i}.shop.test",
                    unicode_name=f"d{i}.shop.test",
                    registrable="shop.test",
                    account_id=shop.id if i % 2 else None,
                    dns_state="ok" if i < 5 else "pending",
                )
            )
    store.close()
    return values


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def names(out: str) -> list[str]:
    return [item["domain"] for item in json.loads(out)]


def test_every_domain_over_several_pages(env: dict[str, str]) -> None:
    code, out, err = run(env, "domain", "list", "--json")
    assert code == 0, err
    assert names(out) == [f"d{i}.shop.test" for i in range(10)]
    code, out, _ = run(env, "domain", "list")
    assert code == 0
    assert out.count("domain") == 1  # one header over all pages
    assert all(f"d{i}.shop.test" in out for i in range(10))


def test_a_limit_says_how_to_go_on(env: dict[str, str]) -> None:
    code, out, err = run(env, "domain", "list", "--json", "--limit", "6")
    assert code == 0
    assert names(out) == [f"d{i}.shop.test" for i in range(6)]
    assert "--after d5.shop.test" in err
    code, out, err = run(env, "domain", "list", "--json", "--after", "d5.shop.test")
    assert names(out) == [f"d{i}.shop.test" for i in range(6, 10)]
    assert err == ""
    code, out, err = run(env, "domain", "list", "--json", "--limit", "10")
    assert len(names(out)) == 10 and err == ""  # exactly all: nothing follows


def test_filters(env: dict[str, str]) -> None:
    code, out, _ = run(env, "domain", "list", "--json", "--dns-state", "ok", "--account", "shop")
    assert names(out) == ["d1.shop.test", "d3.shop.test"]
    code, out, _ = run(env, "domain", "list", "--json", "--prefix", "D7")
    assert names(out) == ["d7.shop.test"]
    code, out, _ = run(env, "domain", "list", "--json", "--prefix", "nothing")
    assert json.loads(out) == []
    code, out, err = run(env, "domain", "list", "--account", "nobody")
    assert code == 2 and "nobody" in err and "Traceback" not in err
