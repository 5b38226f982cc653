"""HTTPS on the edge, with real sockets and real TLS against a throwaway CA."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest

from tests.edge_support import close_writer, get, read_response, running_edge


def _peer_names(writer: asyncio.StreamWriter) -> list[str]:
    peer = writer.get_extra_info("peercert")
    return [value for kind, value in peer["subjectAltName"] if kind == "DNS"]


async def test_known_name_gets_its_certificate_and_the_tracked_link_redirects() -> None:
    async with running_edge() as env:
        env.add_domain("links.alpha.test")
        token = env.token("links.alpha.test", 42, "https://alpha.example/sale?utm=mail")
        reader, writer = await env.open_https("links.alpha.test")
        try:
            assert _peer_names(writer) == ["links.alpha.test"]
            ssl_object = writer.get_extra_info("ssl_object")
            assert ssl_object.selected_alpn_protocol() == "http/1.1"
            assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            writer.write(get(f"/c/{token}", "links.alpha.test"))
            response = await read_response(reader)
        finally:
            await close_writer(writer)
        assert response.status == 302
        assert response.header("location") == "https://alpha.example/sale?utm=mail"
        assert response.header("cache-control") == "no-store"
    assert [(c.domain, c.link_id, c.kind) for c in env.clicks] == [
        ("links.alpha.test", 42, "click")
    ]
    assert env.edge.counters.handshakes_completed == 1


async def test_two_domains_never_get_each_others_certificate() -> None:
    async with running_edge() as env:
        env.add_domain("a.example.test")
        env.add_domain("b.example.test")
        for _ in range(3):
            for name in ("a.example.test", "b.example.test", "A.Example.Test"):
                _, writer = await env.open_https(name)
                try:
                    assert _peer_names(writer) == [name.lower()]
                finally:
                    await close_writer(writer)


async def test_host_header_for_another_domain_is_misdirected_not_redirected() -> None:
    async with running_edge() as env:
        env.add_domain("a.example.test")
        env.add_domain("b.example.test")
        token = env.token("b.example.test")
        response = await env.https("a.example.test", get(f"/c/{token}", "b.example.test"))
        assert response.status == 421
        assert response.header("location") is None
        assert env.clicks == []


async def test_unknown_name_fails_the_handshake_with_unrecognized_name() -> None:
    async with running_edge() as env:
        env.add_domain("known.example.test")
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            await env.open_https("unknown.example.test")
        assert env.edge.counters.handshakes_failed["unknown_name"] == 1
        assert env.edge.counters.handshakes_completed == 0


async def test_missing_sni_fails_the_handshake() -> None:
    async with running_edge() as env:
        env.add_domain("known.example.test")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # even a client that would accept any certificate
        # Python sends no SNI for an IP address.
        with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
            await asyncio.open_connection("127.0.0.1", env.https_port, ssl=context)
        assert env.edge.counters.handshakes_failed["no_sni"] == 1


async def test_replaced_certificate_is_served_on_the_next_handshake() -> None:
    async with running_edge() as env:
        first = env.add_domain("renew.example.test", version=1)
        _, writer = await env.open_https("renew.example.test")
        assert int(writer.get_extra_info("peercert")["serialNumber"], 16) == first.serial
        await close_writer(writer)

        second = env.authority.issue("renew.example.test")
        env.certificates.put("renew.example.test", second.chain_pem, second.key_pem, 2)
        _, writer = await env.open_https("renew.example.test")
        assert int(writer.get_extra_info("peercert")["serialNumber"], 16) == second.serial
        await close_writer(writer)
        assert env.certificates.version("renew.example.test") == 2


async def test_removed_name_is_refused() -> None:
    async with running_edge() as env:
        env.add_domain("gone.example.test")
        _, writer = await env.open_https("gone.example.test")
        await close_writer(writer)
        env.certificates.remove("gone.example.test")
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            await env.open_https("gone.example.test")


async def test_certificate_whose_key_does_not_match_fails_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_edge() as env:
        good = env.authority.issue("broken.example.test")
        other = env.authority.issue("other.example.test")
        env.certificates.put("broken.example.test", good.chain_pem, other.key_pem, 1)
        with caplog.at_level(logging.ERROR, logger="linkcert.edge"):
            for _ in range(2):
                with pytest.raises(ssl.SSLError):
                    await env.open_https("broken.example.test")
        assert env.edge.counters.handshakes_failed["certificate_unusable"] == 2
        # Logged once per version, not once per handshake.
        assert len([r for r in caplog.records if "does not load" in r.getMessage()]) == 1


async def test_plain_http_on_the_https_port_is_counted_and_closed() -> None:
    async with running_edge() as env:
        reader, writer = await asyncio.open_connection("127.0.0.1", env.https_port)
        writer.write(get("/healthz", "x.test"))
        reply = await asyncio.wait_for(reader.read(), 5)
        await close_writer(writer)
        assert not reply.startswith(b"HTTP/")
        assert env.edge.counters.handshakes_failed["not_tls"] == 1


async def test_keep_alive_and_pipelining_over_tls() -> None:
    async with running_edge() as env:
        env.add_domain("pipe.example.test")
        env.challenges["tok-1"] = "tok-1.thumbprint"
        tokens = [env.token("pipe.example.test", n, f"https://dest.example/{n}") for n in range(3)]
        reader, writer = await env.open_https("pipe.example.test")
        try:
            writer.write(
                get(f"/c/{tokens[0]}", "pipe.example.test")
                + get("/.well-known/acme-challenge/tok-1", "pipe.example.test")
                + get(f"/c/{tokens[1]}", "pipe.example.test")
            )
            first, second, third = [await read_response(reader) for _ in range(3)]
            writer.write(get(f"/c/{tokens[2]}", "pipe.example.test"))
            fourth = await read_response(reader)
        finally:
            await close_writer(writer)
        assert (first.status, first.header("location")) == (302, "https://dest.example/0")
        assert (second.status, second.body) == (200, b"tok-1.thumbprint")
        assert (third.status, third.header("location")) == (302, "https://dest.example/1")
        assert (fourth.status, fourth.header("location")) == (302, "https://dest.example/2")


async def test_acme_challenge_is_served_over_https_too() -> None:
    async with running_edge() as env:
        env.add_domain("acme.example.test")
        env.challenges["abc_DEF-123"] = "abc_DEF-123.thumb"
        response = await env.https(
            "acme.example.test", get("/.well-known/acme-challenge/abc_DEF-123", "acme.example.test")
        )
        assert (response.status, response.body) == (200, b"abc_DEF-123.thumb")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_1_1_is_refused() -> None:
    async with running_edge() as env:
        env.add_domain("old.example.test")
        context = env.authority.client_context()
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pytest.skip("this OpenSSL cannot even offer TLS 1.1")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection(
                "127.0.0.1", env.https_port, ssl=context, server_hostname="old.example.test"
            )
        assert env.edge.counters.handshakes_completed == 0
        assert env.edge.counters.handshakes_failed["protocol_version"] == 1


async def test_client_leaving_during_the_handshake_is_counted() -> None:
    async with running_edge(sweep_interval=0.05) as env:
        _, writer = await asyncio.open_connection("127.0.0.1", env.https_port)
        writer.write(b"\x16\x03\x01")
        await close_writer(writer)
        for _ in range(100):
            if env.edge.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert env.edge.counters.handshakes_failed["client_closed"] == 1
        assert env.edge.open_connections == 0
