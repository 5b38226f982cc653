"""What the edge answers on each path: tracked links, opens, challenges, health, the rest."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from datetime import UTC

import pytest

from linkcert.edge.responses import TRANSPARENT_GIF
from linkcert.tracking import Click, make_token, mint
from tests.edge_support import HttpResponse, get, read_response, running_edge

DOMAIN = "links.shop.test"
OTHER = "links.other.test"


def _assert_not_valid_page(response: HttpResponse) -> None:
    assert response.status == 404
    assert response.header("location") is None
    assert response.header("content-type") == "text/html; charset=utf-8"
    assert b"This link is not valid" in response.body


async def test_tracked_link_over_plain_http_redirects_to_the_destination() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 12, "http://shop.example/a?b=c#frag")
        response = await env.http(get(f"/c/{token}?utm_source=client", "LINKS.Shop.Test:80"))
        assert response.status == 302
        assert response.header("location") == "http://shop.example/a?b=c#frag"
        assert response.header("cache-control") == "no-store"
        assert response.body == b""
        assert env.edge.counters.clicks_recorded == 1
    [click] = env.clicks
    assert (click.domain, click.link_id, click.kind) == (DOMAIN, 12, "click")
    assert click.at.tzinfo is UTC


async def test_head_on_a_tracked_link_is_answered_and_recorded_as_machine() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 5)
        response = await env.http(get(f"/c/{token}", DOMAIN, method="HEAD"), head=True)
        assert response.status == 302
        assert response.header("location") == "https://shop.example/p?q=1"
        assert env.edge.counters.machine_recorded == 1
    [click] = env.clicks
    assert (click.link_id, click.machine, click.client) == (5, "head", "127.0.0.1")


async def test_events_carry_the_data_client_and_user_agent_and_mark_machines() -> None:
    from linkcert.tracking import Minter

    async with running_edge(event_machine_seconds=60) as env:
        env.add_domain(DOMAIN)
        minter = Minter(env.key, DOMAIN)
        fresh = minter.token("https://shop.example/new", b"\x00rcpt\xff")
        old = minter.token("https://shop.example/old", b"campaign=7", minted_at=1_000_000)
        person = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"
        for token, agent in (
            (old, person),
            (old, "Mozilla/5.0 (compatible; Slackbot-LinkExpanding 1.0)"),
            (fresh, person),
            (old, "x" * 2000),
        ):
            request = get(f"/c/{token}", DOMAIN, extra=f"User-Agent: {agent}\r\n")
            assert (await env.http(request)).status == 302
    assert [c.machine for c in env.clicks] == [None, "agent:slack", "soon_after_mint", None]
    assert env.clicks[3].user_agent == b"x" * 2000  # cut when written
    first = env.clicks[0]
    assert first.link is not None and first.link.data == b"campaign=7"
    assert first.user_agent == person.encode() and first.client == "127.0.0.1"
    assert env.clicks[2].link is not None and env.clicks[2].link.data == b"\x00rcpt\xff"


async def test_recording_off_answers_and_records_nothing() -> None:
    async with running_edge(record_events=False) as env:
        response = await env.http(get(f"/c/{env.token(DOMAIN, 3)}", DOMAIN))
        assert response.status == 302
    assert env.clicks == []


async def test_open_pixel_is_a_transparent_gif_and_records_an_open() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 77)
        response = await env.http(get(f"/o/{token}", DOMAIN))
        assert response.status == 200
        assert response.header("content-type") == "image/gif"
        assert response.header("cache-control") == "no-store"
        assert response.body == TRANSPARENT_GIF
        assert len(TRANSPARENT_GIF) == 43 and TRANSPARENT_GIF.startswith(b"GIF89a")
    assert [(c.link_id, c.kind) for c in env.clicks] == [(77, "open")]


async def test_forged_truncated_altered_and_other_domain_tokens_are_not_valid() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 1, "https://shop.example/")
        raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        altered_destination = bytearray(raw)
        altered_destination[10] ^= 0x01
        altered_tag = bytearray(raw)
        altered_tag[-1] ^= 0x80

        def encode(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        forged_with_wrong_key = encode(bytes(raw[:-16]) + bytes(16))
        candidates = [
            token[:-1],
            token[:20],
            token + "A",
            encode(bytes(altered_destination)),
            encode(bytes(altered_tag)),
            forged_with_wrong_key,
            token.swapcase(),
            "",
            "not-a-token",
            token + "/extra",
            token + "%00",
        ]
        for candidate in candidates:
            for prefix in ("/c/", "/o/"):
                _assert_not_valid_page(await env.http(get(prefix + candidate, DOMAIN)))
        # A good token, on another customer's domain, over both schemes.
        env.add_domain(OTHER)
        _assert_not_valid_page(await env.http(get(f"/c/{token}", OTHER)))
        _assert_not_valid_page(await env.https(OTHER, get(f"/c/{token}", OTHER)))
        assert env.edge.counters.invalid_tokens >= len(candidates) * 2 + 2
    assert env.clicks == []


async def test_acme_challenge_answers_from_the_lookup() -> None:
    async with running_edge() as env:
        env.challenges["Tk3n_-x"] = "Tk3n_-x.account-thumbprint"
        found = await env.http(get("/.well-known/acme-challenge/Tk3n_-x", "new.customer.test"))
        assert found.status == 200
        assert found.header("content-type") == "text/plain"
        assert found.body == b"Tk3n_-x.account-thumbprint"
        missing = await env.http(get("/.well-known/acme-challenge/unknown", "x.test"))
        assert missing.status == 404
        malformed = await env.http(get("/.well-known/acme-challenge/a.b", "x.test"))
        assert malformed.status == 404
        assert env.edge.counters.challenges_served == 1


async def test_failing_challenge_lookup_answers_503_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_lookup(token: str) -> str | None:
        raise ConnectionError("database unreachable")

    async with running_edge(challenge_lookup=broken_lookup) as env:
        with caplog.at_level(logging.ERROR, logger="linkcert.edge"):
            response = await env.http(get("/.well-known/acme-challenge/tok", "x.test"))
        assert response.status == 503
        assert env.edge.counters.challenge_lookup_failures == 1
        [record] = caplog.records
        assert "database unreachable" in record.getMessage()
        assert "tok" not in record.getMessage()


async def test_health_and_everything_else() -> None:
    async with running_edge() as env:
        assert (await env.http(get("/healthz", "anything.test"))).status == 200
        for path in ("/", "/c", "/c/", "/favicon.ico", "/.well-known/other", "/C/abc"):
            response = await env.http(get(path, DOMAIN))
            assert response.status == 404, path
            assert response.header("location") is None
        refused = await env.http(get("/healthz", DOMAIN, method="DELETE"))
        assert refused.status == 405


async def test_absolute_form_target_uses_its_host() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 4)
        response = await env.http(get(f"http://{DOMAIN}/c/{token}", "proxy.test"))
        assert response.status == 302


async def test_clicks_reach_the_sink_in_batches_and_close_flushes_them_all() -> None:
    batches: list[Sequence[Click]] = []

    async def sink(batch: Sequence[Click]) -> None:
        await asyncio.sleep(0)
        batches.append(batch)

    connections, per_connection = 4, 500
    async with running_edge(sink=sink, click_batch_size=200, click_batch_delay=60) as env:
        token = env.token(DOMAIN, 8)
        request = get(f"/c/{token}", DOMAIN)

        async def click_many() -> None:
            reader, writer = await env.open_http()
            writer.write(request * per_connection)  # pipelined
            for _ in range(per_connection):
                assert (await read_response(reader)).status == 302
            writer.close()

        await asyncio.gather(*(click_many() for _ in range(connections)))
    # The long batch delay means the last partial batch went out only because of aclose().
    assert sum(len(batch) for batch in batches) == connections * per_connection
    assert all(len(batch) <= 200 for batch in batches)
    assert len(batches) >= connections * per_connection // 200
    assert env.edge.clicks.stats.delivered == connections * per_connection


async def test_a_link_clicked_again_is_recorded_again_and_stays_bound_to_its_domain() -> None:
    async with running_edge() as env:
        token = env.token(DOMAIN, 31, "https://shop.example/again")
        env.add_domain(OTHER)
        for _ in range(3):
            response = await env.http(get(f"/c/{token}", DOMAIN))
            assert (response.status, response.header("location")) == (
                302,
                "https://shop.example/again",
            )
        # The remembered answer belongs to the domain it was verified for.
        _assert_not_valid_page(await env.http(get(f"/c/{token}", OTHER)))
        opened = await env.http(get(f"/o/{token}", DOMAIN))
        assert opened.body == TRANSPARENT_GIF
    assert [(c.domain, c.link_id, c.kind) for c in env.clicks] == [(DOMAIN, 31, "click")] * 3 + [
        (DOMAIN, 31, "open")
    ]
    assert env.edge.counters.invalid_tokens == 1


async def test_verified_tokens_kept_are_bounded_and_forged_ones_are_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from linkcert.edge import routes

    monkeypatch.setattr(routes, "VERIFIED_TOKENS_KEPT", 4)
    async with running_edge() as env:
        tokens = [env.token(DOMAIN, link_id) for link_id in range(1, 8)]
        for token in tokens:
            assert (await env.http(get(f"/c/{token}", DOMAIN))).status == 302
        forged = tokens[0][:-2] + ("AA" if tokens[0][-2:] != "AA" else "QQ")
        _assert_not_valid_page(await env.http(get(f"/c/{forged}", DOMAIN)))
        kept = env.edge._hub.router._verified
        assert len(kept) == 4
        assert [key[1].decode() for key in kept] == tokens[-4:]  # the oldest went first
        # An evicted token is simply verified again.
        assert (await env.http(get(f"/c/{tokens[0]}", DOMAIN))).status == 302
    assert [c.link_id for c in env.clicks] == [*range(1, 8), 1]


async def test_links_are_answered_only_on_served_names_and_in_their_epoch() -> None:
    async with running_edge() as env:
        valid = make_token(env.key, OTHER, 5, "https://shop.example/p")
        # A correctly signed link on a name the edge does not serve: not answered, over HTTP.
        _assert_not_valid_page(await env.http(get(f"/c/{valid}", OTHER)))
        assert env.edge.counters.unserved_hosts == 1
        env.add_domain(OTHER)
        assert (await env.http(get(f"/c/{valid}", OTHER))).status == 302
        # The name changes hands (or is deleted and saved again): its epoch goes up, and the
        # links made before, remembered or not, stop for good.
        issued = env.authority.issue(OTHER)
        env.certificates.put(OTHER, issued.chain_pem, issued.key_pem, 2, epoch=1)
        _assert_not_valid_page(await env.http(get(f"/c/{valid}", OTHER)))
        _assert_not_valid_page(await env.http(get(f"/o/{valid}", OTHER)))
        assert env.edge.counters.invalid_tokens == 2
        fresh = mint(env.key, OTHER, "https://shop.example/new", link_id=6, epoch=1)
        fresh = fresh.rsplit("/", 1)[1]
        assert (await env.http(get(f"/c/{fresh}", OTHER))).status == 302
        env.certificates.remove(OTHER)
        _assert_not_valid_page(await env.http(get(f"/c/{fresh}", OTHER)))
    assert [c.link_id for c in env.clicks] == [5, 6]


async def test_rotated_out_key_is_refused_and_a_listed_one_accepted() -> None:
    from linkcert.tracking import Minter, TrackingKeys, tracking_key_from_secret

    current = tracking_key_from_secret("the key that mints now, long enough")
    previous = tracking_key_from_secret("the key before it, still listed, long enough")
    retired = tracking_key_from_secret("the key dropped from the list, long enough")
    keys = TrackingKeys([(3, current), (2, previous)])
    async with running_edge(tracking_keys=keys) as env:
        env.add_domain(DOMAIN)
        minted = {
            key_id: Minter(TrackingKeys([(key_id, key)]), DOMAIN).token(
                f"https://shop.example/{key_id}", b"rcpt=1"
            )
            for key_id, key in ((3, current), (2, previous), (1, retired))
        }
        for key_id in (3, 2):
            response = await env.http(get(f"/c/{minted[key_id]}", DOMAIN))
            assert response.status == 302
            assert response.header("location") == f"https://shop.example/{key_id}"
        _assert_not_valid_page(await env.http(get(f"/c/{minted[1]}", DOMAIN)))
        assert env.edge.counters.retired_key_tokens == 1
    assert sorted(c.link_id or 0 for c in env.clicks) == [0, 0]
