"""International destinations are accepted in their normalized form (IDNA host, percent-encoded
path and query), which is what is stored, signed and redirected to; hosts that are not hosts
are refused with a clear message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select

from linkcert.api import create_app
from linkcert.links import BatchItem, create_link, create_links
from linkcert.store import Link, Store
from linkcert.tracking import (
    InvalidDestination,
    check_destination,
    read_token,
    tracking_key_from_secret,
)
from linkcert.tracking.destinations import normalize_destination
from tests.api_support import SETTINGS, bearer, client, make_world
from tests.edge_support import get, running_edge

SECRET = "s" * 40
KEY = tracking_key_from_secret(SECRET)


@pytest.mark.parametrize(
    ("given_url", "normalized"),
    [
        ("https://例え.jp/ä", "https://xn--r8jz45g.jp/%C3%A4"),
        (
            "https://münchen.de:8443/straße?q=grüße&x=1#süd",
            "https://xn--mnchen-3ya.de:8443/stra%C3%9Fe?q=gr%C3%BC%C3%9Fe&x=1#s%C3%BCd",
        ),
        ("https://shop.example/ä b", "https://shop.example/%C3%A4%20b"),
        ("https://shop.example/summer sale", "https://shop.example/summer%20sale"),
        ("http://ÉXAMPLE.com/", "http://xn--xample-9ua.com/"),
        ("https://例え.jp./", "https://xn--r8jz45g.jp./"),
        # Already normalized, and plain ASCII: unchanged.
        ("https://xn--r8jz45g.jp/%C3%A4", "https://xn--r8jz45g.jp/%C3%A4"),
        ("https://Shop.Example/A?b=%20#c", "https://Shop.Example/A?b=%20#c"),
    ],
)
def test_international_destinations_are_normalized(given_url: str, normalized: str) -> None:
    assert normalize_destination(given_url) == normalized
    assert normalize_destination(normalized) == normalized


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://.", "no valid host: the host is only a dot"),
        ("https://./path", "no valid host"),
        ("https://../", "empty label"),
        ("https://...", "empty label"),
        ("https://a..b/", "empty label"),
        ("https://.example.com/", "empty label"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://:443/", "no host"),
        ("https://ex%41mple.com/", "characters a host name cannot"),
        ("https://" + "a" * 64 + ".example/", "over 63"),
        ("https://例え..jp/", "no valid host"),
        ("https://[zz]/", "cannot be parsed"),
        ("https://user@例え.jp/", "credentials"),
        ("https://例え.jp/\r\nSet-Cookie: a", "control character"),
        ("ftp://例え.jp/", "http:// or https://"),
        ("https://例え.jp/a\\b", "backslash"),
        ("https://shop.example/\ud800", "not valid text"),
    ],
)
def test_destinations_without_a_valid_host_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidDestination, match=message):
        normalize_destination(url)


@pytest.mark.parametrize("url", ["https://.", "https://../", "https://a..b/x", "http://.x/"])
def test_the_token_check_refuses_them_too(url: str) -> None:
    with pytest.raises(InvalidDestination, match="no valid host"):
        check_destination(url)


_labels = st.text(alphabet="abcdeéüß例え0123456789-", min_size=1, max_size=12)
_paths = st.text(alphabet=st.characters(min_codepoint=0x20, exclude_characters="\\\x7f"))


@given(host=st.lists(_labels, min_size=1, max_size=3).map(".".join), path=_paths)
def test_normalized_destinations_are_ascii_and_stable(host: str, path: str) -> None:
    try:
        normalized = normalize_destination(f"https://{host}/{path}")
    except InvalidDestination:
        return
    assert normalized.isascii() and " " not in normalized
    assert normalize_destination(normalized) == normalized
    assert check_destination(normalized) == normalized


async def test_the_api_stores_signs_and_the_edge_redirects_the_normalized_form(
    store: Store,
) -> None:
    world = make_world(store)
    settings = SETTINGS.model_copy(update={"tracking_key": SecretStr(SECRET)})
    async with client(create_app(store, settings, rate_limit=None)) as http:
        made = await http.post(
            "/api/v1/links", json={"url": "https://例え.jp/ä?q=ü"}, headers=bearer(world.a_token)
        )
        refused = await http.post(
            "/api/v1/links", json={"url": "https://."}, headers=bearer(world.a_token)
        )
    assert made.status_code == 201, made.text
    normalized = "https://xn--r8jz45g.jp/%C3%A4?q=%C3%BC"
    assert made.json()["destination"] == normalized
    with store.session() as session:
        assert session.scalars(select(Link.destination)).all() == [normalized]
    token = made.json()["url"].rsplit("/", 1)[1]
    assert read_token(KEY, "links.alpha.test", token).destination == normalized
    assert refused.status_code == 422
    assert refused.json()["type"].endswith("invalid-destination")
    assert "no valid host" in refused.json()["detail"]

    async with running_edge() as edge:
        link = create_link(store, edge.key, "links.alpha.test", "https://münchen.de/straße")
        batch = create_links(
            store, edge.key, "links.alpha.test", [BatchItem("https://münchen.de/ü", b"")]
        )
        [minted] = batch.tokens
        assert read_token(edge.key, "links.alpha.test", minted).destination == (
            "https://xn--mnchen-3ya.de/%C3%BC"
        )
        answer = await edge.http(get(link.url.split("links.alpha.test", 1)[1], "links.alpha.test"))
    assert answer.status == 302
    assert answer.header("location") == "https://xn--mnchen-3ya.de/stra%C3%9Fe"
    assert link.destination == "https://xn--mnchen-3ya.de/stra%C3%9Fe"
