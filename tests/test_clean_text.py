"""Clean text in, clean text out: hidden characters refused in names and notes, look-alike
names saved with a warning, and nothing stored ever written raw to an operator's terminal."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from linkcert.cli import app
from linkcert.domains import create_account, set_tracking_domain
from linkcert.store import Account, Store
from linkcert.text import check_clean, mixed_script_labels, printable
from tests.api_support import POLICY, World, app_for, assert_problem, bearer, client
from tests.ownership_support import prove
from tests.web_support import BASE, browser, log_in, page_csrf

HIDDEN = [
    ("nul\x00", "U+0000"),
    ("red\x1b[31m", "U+001B"),
    ("bell\x07", "U+0007"),
    ("del\x7f", "U+007F"),
    ("c1\x9b2J", "U+009B"),
    ("evil\u202etxt.exe", "U+202E"),
    ("iso\u2066late", "U+2066"),
    ("line\u2028break", "U+2028"),
]
CONFUSABLE = "links.ex\u0430mple.test"  # a Cyrillic a among Latin letters


@pytest.mark.parametrize(("value", "code"), HIDDEN)
def test_hidden_characters_are_refused_with_what_and_where(value: str, code: str) -> None:
    with pytest.raises(ValueError, match=re.escape(code)) as caught:
        check_clean(value, "account name")
    assert "account name" in str(caught.value) and "position" in str(caught.value)
    shown = printable(value)
    assert chr(int(code[2:], 16)) not in shown and "\\" in shown


def test_notes_keep_their_lines() -> None:
    assert check_clean("first line\r\nsecond\tline", "note", multiline=True) == (
        "first line\nsecond\tline"
    )
    with pytest.raises(ValueError, match=re.escape("U+001B")):
        check_clean("a\x1b[2Jb", "note", multiline=True)
    assert printable("a\x1b[2J\u202eb\x00") == "a\\x1b[2J\\u202eb\\x00"


@pytest.mark.parametrize(
    ("name", "mixed"),
    [
        ("links.example.com", []),
        (CONFUSABLE, [("ex\u0430mple", ["Cyrillic", "Latin"])]),
        ("links.\u043f\u0440\u0438\u043c\u0435\u0440.test", []),  # all Cyrillic
        ("\u4f8b\u3048\u30c6\u30b9\u30c8.jp", []),  # Japanese: Han, Hiragana, Katakana
        ("\u65e5\u672cabc.jp", []),  # Latin beside Han is allowed (UTS 39 highly restrictive)
        ("a\u03b2c.test", [("a\u03b2c", ["Greek", "Latin"])]),
        ("l1nks-2.test", []),  # digits and hyphens belong to every script
    ],
)
def test_mixed_script_labels(name: str, mixed: list[tuple[str, list[str]]]) -> None:
    assert mixed_script_labels(name) == mixed


@pytest.mark.parametrize(("value", "code"), HIDDEN[:2] + HIDDEN[5:6])
async def test_the_api_refuses_hidden_characters_in_names_and_notes(
    world: World, value: str, code: str
) -> None:
    api = client(app_for(world))
    account = await api.post(
        "/api/v1/accounts", json={"name": value}, headers=bearer(world.operator)
    )
    assert code in assert_problem(account, 422, "invalid-account")["detail"]
    token = await api.post(
        "/api/v1/tokens",
        json={"name": value, "account_id": world.a_id},
        headers=bearer(world.operator),
    )
    assert token.status_code == 422 and code in token.text
    note = await api.post(
        "/api/v1/brand-requests",
        json={"domain": "links.brand.test", "note": value},
        headers=bearer(world.a_token),
    )
    assert code in assert_problem(note, 422, "validation-error")["detail"]


async def test_the_page_refuses_a_hidden_character_in_a_note(world: World) -> None:
    web = app_for(world)
    page = browser(web)
    await log_in(page, world.a_token)
    csrf = await page_csrf(page, "/account")
    response = await page.post(
        "/account/brand-requests",
        data={"domain": "links.brand.test", "note": "hi\x1b[2J", "csrf_token": csrf},
        headers={"Origin": BASE},
    )
    assert response.status_code == 422
    assert "control character (U+001B ESCAPE)" in response.text


def cli(store: Store, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"LINKCERT_DATABASE_URL": store.url})


def test_the_cli_refuses_hidden_characters_and_never_prints_them(store: Store) -> None:
    refused = cli(store, "account", "create", "evil\x1b[2J", "--email", "a@b.test")
    assert refused.exit_code == 2
    assert "U+001B" in refused.output and "\x1b" not in refused.output
    # A value stored before the check existed (or by hand) is shown escaped.
    shop = create_account(store, "shop")
    set_tracking_domain(store, shop.id, "links.shop.test", POLICY)
    prove(store, "links.shop.test", shop.id)  # the account's name is shown only once it owns it
    with store.session() as session:
        session.execute(
            update(Account).where(Account.id == shop.id).values(name="sh\x1b[2Jop\u202e[/]")
        )
    for args in (("domain", "list"), ("domain", "status", "links.shop.test")):
        result = cli(store, *args)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\u202e" not in result.output
        assert "sh\\x1b[2Jop\\u202e" in result.output


async def test_a_look_alike_name_is_saved_with_a_warning(world: World) -> None:
    api = client(app_for(world))
    saved = await api.put(
        f"/api/v1/accounts/{world.a_id}/tracking-domain",
        json={"domain": CONFUSABLE},
        headers=bearer(world.a_token),
    )
    assert saved.status_code in (200, 201, 202), saved.text
    status = await api.get(
        f"/api/v1/accounts/{world.a_id}/tracking-domain", headers=bearer(world.a_token)
    )
    [warning] = status.json()["warnings"]
    assert warning["code"] == "mixed_script" and "Cyrillic and Latin" in warning["message"]
    assert "U+0430 CYRILLIC SMALL LETTER A" in warning["message"]  # which letter to look for
    plain = await api.get(
        f"/api/v1/accounts/{world.b_id}/tracking-domain", headers=bearer(world.b_token)
    )
    assert plain.json()["warnings"] == []
    page = browser(app_for(world))
    await log_in(page, world.a_token)
    html = (await page.get("/account")).text
    assert 'data-code="mixed_script"' in html and "Warning:" in html
    result = cli(world.store, "domain", "status", "links.xn--exmple-4nf.test")
    assert "warning:" in result.output and "Cyrillic and Latin" in result.output
