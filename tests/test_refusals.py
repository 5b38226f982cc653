"""The brand use cases refuse with one error type, which every front end words the same way."""

from __future__ import annotations

import html

import pytest
from typer.testing import CliRunner

from linkcert import brand
from linkcert.brand import request_brand_domain
from linkcert.cli import app as cli
from linkcert.refusals import Refused
from linkcert.web import create_app
from tests.api_support import POLICY, SETTINGS, World, bearer, client
from tests.web_support import BASE, browser, log_in, page_csrf


async def test_a_decided_request_is_refused_in_the_same_words_everywhere(world: World) -> None:
    request = request_brand_domain(world.store, world.a_id, "links.brand-a.test", "", POLICY)
    brand.reject(world.store, request.id, "ops")
    with pytest.raises(Refused) as refused:
        brand.approve(world.store, request.id, "ops")
    assert (refused.value.status, refused.value.slug) == (409, "request-closed")
    words = refused.value.message

    site = create_app(world.store, SETTINGS, rate_limit=None)
    async with client(site) as api:
        answer = await api.post(
            f"/api/v1/brand-requests/{request.id}/approve", headers=bearer(world.operator)
        )
    assert answer.status_code == 409
    assert answer.json()["detail"] == words
    assert answer.json()["fix"] == refused.value.fix

    async with browser(site) as web:
        await log_in(web, world.operator)
        csrf = await page_csrf(web, "/console")
        page = await web.post(
            f"/console/brand-requests/{request.id}/approve",
            data={"csrf_token": csrf},
            headers={"Origin": BASE},
        )
    assert page.status_code == 409
    assert words in html.unescape(page.text)

    shown = CliRunner().invoke(
        cli, ["brand", "approve", str(request.id)], env={"LINKCERT_DATABASE_URL": world.store.url}
    )
    assert shown.exit_code == 1
    assert words in " ".join(shown.output.split())
