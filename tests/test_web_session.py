"""Logging in to the pages: signed sessions, cookie flags, CSRF, logout, revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from linkcert.config import Settings
from linkcert.keys import generate_master_key
from linkcert.store import WebSession as WebSessionRow
from linkcert.web.session import (
    SESSION_COOKIE,
    SessionSigner,
    end_session,
    open_session,
    seal_session,
    start_session,
)
from tests.api_support import World, app_for, bearer, client
from tests.web_support import BASE, SCRIPT, browser, csrf_of, log_in, page_csrf


@pytest.fixture
def web(world: World) -> httpx.AsyncClient:
    return browser(app_for(world))


def test_sessions_open_only_untouched_stored_and_in_time(world: World) -> None:
    store = world.store
    signer = SessionSigner(b"k" * 32)
    issued = datetime(2030, 1, 1, tzinfo=UTC)
    session_id, session = start_session(store, 2, now=issued)
    sealed = seal_session(signer, session_id)
    assert session_id not in repr(session)  # only its hash is stored
    later = issued + timedelta(seconds=1)
    assert open_session(signer, store, sealed, now=later) == session
    assert open_session(signer, store, sealed, now=session.expires) is None  # expired
    body, mac = sealed.split(".")
    assert open_session(signer, store, body + "." + mac[:-2] + "AA", now=later) is None
    assert open_session(SessionSigner(b"o" * 32), store, sealed, now=later) is None
    for garbage in ("", "abc", "a.b.c", "e30.", None):
        assert open_session(signer, store, garbage, now=later) is None
    # A well-signed cookie naming no stored session opens nothing.
    assert open_session(signer, store, signer.seal({"s": "x" * 43}), now=later) is None
    end_session(store, session)
    assert open_session(signer, store, sealed, now=later) is None


def test_the_session_key_follows_the_master_key() -> None:
    master = generate_master_key("a")
    one = SessionSigner.for_settings(Settings(master_key=master))  # type: ignore[arg-type]
    two = SessionSigner.for_settings(Settings(master_key=master))  # type: ignore[arg-type]
    sealed = one.seal({"t": 1})
    assert two.open(sealed) == {"t": 1}  # every API process of a fleet agrees
    other = SessionSigner.for_settings(Settings(master_key=generate_master_key("b")))  # type: ignore[arg-type]
    assert other.open(sealed) is None


async def test_login_sets_a_strict_httponly_cookie_without_the_token(
    web: httpx.AsyncClient, world: World
) -> None:
    response = await log_in(web, world.a_token)
    assert response.headers["location"] == "/account"
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and SESSION_COOKIE in v
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; Secure over HTTPS (below)
    assert world.a_token not in cookie and world.a_token[4:20] not in cookie
    page = await web.get("/account")
    assert page.status_code == 200 and "alpha" in page.text
    assert world.a_token not in page.text


async def test_the_cookie_is_secure_over_https(world: World) -> None:
    app = app_for(world)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://127.0.0.1"
    ) as secure:
        form = await secure.get("/login")
        assert "Secure" in form.headers["set-cookie"]
        response = await secure.post(
            "/login",
            data={"token": world.a_token, "csrf_token": csrf_of(form.text)},
            headers={"Origin": "https://127.0.0.1"},
        )
        assert "Secure" in response.headers["set-cookie"]


async def test_operators_land_on_the_console(web: httpx.AsyncClient, world: World) -> None:
    response = await log_in(web, world.operator)
    assert response.headers["location"] == "/console"
    assert (await web.get("/account")).headers["location"] == "/console"
    assert (await web.get("/")).headers["location"] == "/console"


async def test_accounts_are_kept_out_of_the_console(web: httpx.AsyncClient, world: World) -> None:
    await log_in(web, world.a_token)
    assert (await web.get("/console")).headers["location"] == "/account"
    retry = await web.post(
        "/console/domains/retry",
        data={"domain": "links.beta.test", "csrf_token": await page_csrf(web, "/account")},
        headers={"Origin": BASE},
    )
    assert retry.status_code == 303 and retry.headers["location"] == "/account"


async def test_bad_tokens_are_refused_with_the_reason(web: httpx.AsyncClient) -> None:
    form = await web.get("/login")
    response = await web.post(
        "/login", data={"token": "lct_nope", "csrf_token": csrf_of(form.text)}
    )
    assert response.status_code == 401
    assert "not a linkcert API token" in response.text
    assert "lct_nope" not in response.text.replace('value="', "")


async def test_login_without_the_forms_secret_is_refused(
    web: httpx.AsyncClient, world: World
) -> None:
    # Another site posting a token of its choosing has no login cookie to match.
    response = await web.post("/login", data={"token": world.a_token, "csrf_token": "forged"})
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    form = await web.get("/login")
    foreign = await web.post(
        "/login",
        data={"token": world.a_token, "csrf_token": csrf_of(form.text)},
        headers={"Origin": "https://evil.test"},
    )
    assert foreign.status_code == 403


async def test_posts_need_the_csrf_token_and_our_origin(
    web: httpx.AsyncClient, world: World
) -> None:
    await log_in(web, world.a_token)
    csrf = await page_csrf(web, "/account")
    path = "/account/tracking-domain"
    missing = await web.post(path, data={"domain": "links.new.test"})
    assert missing.status_code == 403 and "expired" in missing.text
    foreign = await web.post(
        path,
        data={"domain": "links.new.test", "csrf_token": csrf},
        headers={"Origin": "https://evil.test"},
    )
    assert foreign.status_code == 403
    scripted = await web.post(
        "/account/dns-check", json={"domain": "links.new.test"}, headers=SCRIPT
    )
    assert scripted.status_code == 403
    api = client(app_for(world))
    status = await api.get(
        f"/api/v1/accounts/{world.a_id}/tracking-domain", headers=bearer(world.a_token)
    )
    assert status.json()["domain"] == "links.alpha.test"  # nothing was saved


async def test_logout_ends_the_session(web: httpx.AsyncClient, world: World) -> None:
    await log_in(web, world.a_token)
    csrf = await page_csrf(web, "/account")
    response = await web.post("/logout", data={"csrf_token": csrf}, headers={"Origin": BASE})
    assert response.headers["location"] == "/login?logged_out=1"
    assert 'linkcert_session=""' in response.headers["set-cookie"]
    assert (await web.get("/account")).headers["location"] == "/login"
    assert "You are logged out." in (await web.get("/login?logged_out=1")).text


async def test_the_cookie_of_a_logged_out_session_opens_nothing(
    web: httpx.AsyncClient, world: World
) -> None:
    """Someone who copied the cookie before the logout gets nothing with it after."""
    await log_in(web, world.a_token)
    stolen = web.cookies[SESSION_COOKIE]
    csrf = await page_csrf(web, "/account")
    await web.post("/logout", data={"csrf_token": csrf}, headers={"Origin": BASE})
    replay = browser(app_for(world))
    replay.cookies.set(SESSION_COOKIE, stolen)
    assert (await replay.get("/account")).headers["location"] == "/login"
    scripted = await replay.get("/account/status", headers=SCRIPT)
    assert scripted.status_code == 401
    with world.store.session() as session:
        assert session.scalar(select(func.count()).select_from(WebSessionRow)) == 0


async def test_revoking_the_token_ends_its_sessions(web: httpx.AsyncClient, world: World) -> None:
    await log_in(web, world.a_token)
    api = client(app_for(world))
    await api.delete("/api/v1/tokens/2", headers=bearer(world.operator))  # alpha's token
    assert (await web.get("/account")).headers["location"] == "/login"
    scripted = await web.get("/account/status", headers=SCRIPT)
    assert scripted.status_code == 401 and scripted.json() == {"login": "/login"}


async def test_pages_forbid_framing_and_caching(web: httpx.AsyncClient, world: World) -> None:
    page = await web.get("/login")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
