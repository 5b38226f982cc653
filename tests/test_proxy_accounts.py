"""Accounts with origins of their own (regional trackers): stored, shown read-only in the
console, fed to the edge, and used for that account's names only."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from sqlalchemy import select

from linkcert.config import Settings
from linkcert.domains import set_account_upstreams
from linkcert.edge import CertificateCache, Edge, EdgeSettings, ProxySettings
from linkcert.keys import MasterKeys, generate_master_key
from linkcert.origins import parse_origin
from linkcert.service.feeds import StoreFeeds
from linkcert.service.roles import Roles
from linkcert.service.runtime import Runtime
from linkcert.store import Domain
from linkcert.uploads import check_upload, store_upload
from linkcert.web import create_app
from tests.api_support import World
from tests.certs_support import ThrowawayCA, pem
from tests.edge_support import TestAuthority, close_writer
from tests.proxy_support import fault_origin, nginx_origin, read_reply
from tests.web_support import browser, log_in

MASTER = generate_master_key("t")


def settings(**more: object) -> Settings:
    return Settings(
        allow_test_domains=True,
        cname_targets=("edge.platform.test",),
        master_key=MASTER,  # type: ignore[arg-type]
        **more,  # type: ignore[arg-type]
    )


async def test_the_console_shows_where_a_domain_is_relayed(world: World) -> None:
    set_account_upstreams(world.store, world.a_id, ["http://tracker-eu.internal:8080"])
    proxy = settings(edge_mode="proxy", edge_upstreams=("http://tracker.internal:8080",))
    web = browser(create_app(world.store, proxy, wake=lambda: None, rate_limit=None))
    await log_in(web, world.operator)
    own = (await web.get("/console/domains/links.alpha.test")).text
    default = (await web.get("/console/domains/links.beta.test")).text
    assert "<code>http://tracker-eu.internal:8080</code>" in own
    assert "this account&#39;s own origins" in own
    assert "<code>http://tracker.internal:8080</code>" in default
    assert "edge_upstreams" in default
    # Read-only: the page has no form for it.
    assert 'name="upstreams"' not in own

    tracking = browser(create_app(world.store, settings(), wake=lambda: None, rate_limit=None))
    await log_in(tracking, world.operator)
    plain = (await tracking.get("/console/domains/links.beta.test")).text
    assert 'id="tracker"' not in plain


def test_the_feed_gives_the_edge_each_names_account_origins(world: World) -> None:
    set_account_upstreams(
        world.store, world.a_id, ["http://tracker-eu.internal:8080", "https://eu2.internal"]
    )
    feeds = StoreFeeds(world.store, MasterKeys.parse(MASTER), CertificateCache())
    feeds.sync_here()
    assert feeds.upstreams_of("links.alpha.test") == (
        parse_origin("http://tracker-eu.internal:8080"),
        parse_origin("https://eu2.internal:443"),
    )
    assert feeds.upstreams_of("links.beta.test") is None
    set_account_upstreams(world.store, world.a_id, None)
    feeds.sync_here()
    assert feeds.upstreams == {}


async def test_an_accounts_names_are_relayed_to_its_own_origins(world: World) -> None:
    async with fault_origin() as regional, fault_origin() as default:
        set_account_upstreams(world.store, world.a_id, [regional.url])
        cache = CertificateCache()
        feeds = StoreFeeds(world.store, MasterKeys.parse(MASTER), cache)
        await feeds.sync()
        authority = TestAuthority()
        for name in ("links.alpha.test", "links.beta.test"):
            issued = authority.issue(name)
            cache.put(name, issued.chain_pem, issued.key_pem, 1)
        edge = Edge(
            tracking_key=b"k" * 32,
            certificates=cache,
            challenge_lookup=feeds.challenges,
            click_sink=lambda clicks: None,
            settings=EdgeSettings(
                http="127.0.0.1:0",
                proxy=ProxySettings(mode="proxy", upstreams=(parse_origin(default.url),)),
            ),
            account_upstreams=feeds.upstreams_of,
        )
        async with edge:
            assert edge.http_port is not None
            answers = {}
            for name in ("links.alpha.test", "links.beta.test"):
                reader, writer = await asyncio.open_connection("127.0.0.1", edge.http_port)
                try:
                    writer.write(f"GET /l/1 HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
                    answers[name] = await read_reply(reader)
                finally:
                    await close_writer(writer)
    assert answers["links.alpha.test"].header("x-origin-port") == str(regional.port)
    assert answers["links.beta.test"].header("x-origin-port") == str(default.port)


@pytest.mark.nginx
async def test_the_edge_role_in_proxy_mode_as_deploy_md_sets_it_up(
    world: World, tmp_path: Path
) -> None:
    """The settings of docs/deploy.md, "In front of your own tracker", on the edge role of a
    real runtime: a secured name is relayed to nginx over HTTPS and HTTP; another name on its
    TLS connection, and a name linkcert does not serve, are not."""
    keys = MasterKeys.parse(MASTER)
    ca = ThrowawayCA.create()
    leaf = ca.issue("links.alpha.test")
    checked = check_upload(
        leaf.chain_pem, leaf.key_pem, "links.alpha.test", private_roots=leaf.roots
    )
    with world.store.session() as session:
        domain = session.scalars(select(Domain).where(Domain.name == "links.alpha.test")).one()
        domain.current_certificate_id = store_upload(session, keys, domain, checked).id
    with nginx_origin(tmp_path) as nginx:
        proxy = settings(
            edge_mode="proxy",
            edge_upstreams=(nginx.url,),
            http_listen="127.0.0.1:0",
            https_listen="127.0.0.1:0",
            tracking_key="t" * 40,
        )
        runtime = Runtime(proxy, Roles(worker=False, edge=True, api=False), store=world.store)
        await runtime.start()
        try:
            assert runtime.edge is not None
            http_port, https_port = runtime.edge.http_port, runtime.edge.https_port
            client = ssl.create_default_context(cadata=pem(ca.root).decode())
            answers = []
            for port, context in ((https_port, client), (http_port, None)):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1",
                    port,
                    ssl=context,
                    server_hostname="links.alpha.test" if context else None,
                )
                try:
                    writer.write(b"GET /echo HTTP/1.1\r\nHost: links.alpha.test\r\n\r\n")
                    answers.append(await read_reply(reader))
                    writer.write(b"GET /echo HTTP/1.1\r\nHost: links.unknown.test\r\n\r\n")
                    answers.append(await read_reply(reader))
                finally:
                    await close_writer(writer)
        finally:
            await runtime.aclose()
    secure, misdirected, plain, unknown = answers
    assert secure.status == 200 and secure.fields["x-forwarded-proto"] == "https"
    assert secure.fields["host"] == "links.alpha.test"
    assert misdirected.status == 421  # another name on a connection made for this one
    assert plain.status == 200 and plain.fields["x-forwarded-proto"] == "http"
    assert unknown.status == 404
