"""The edge's TLS 1.3 suite order: AES-128-GCM first, ChaCha20 for clients that prefer it."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import subprocess

import pytest

from linkcert.edge import sslctx, tls13suites, tlsconfig
from tests.edge_support import EdgeUnderTest, running_edge

NAME = "links.alpha.test"


def _negotiated_by_python(env: EdgeUnderTest, maximum: ssl.TLSVersion) -> str:
    context = env.authority.client_context()
    context.maximum_version = maximum
    with (
        socket.create_connection(("127.0.0.1", env.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=NAME) as tls,
    ):
        cipher = tls.cipher()
    assert cipher is not None
    return cipher[0]


def _openssl() -> str:
    """The openssl command (installed by scripts/install-system-packages.sh)."""
    found = shutil.which("openssl")
    if found is None:
        message = "the openssl command is not installed (scripts/install-system-packages.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _negotiated_by_s_client(env: EdgeUnderTest, suites: str) -> str:
    """The suite `openssl s_client` (a client independent of Python) ends up with."""
    result = subprocess.run(
        [
            _openssl(),
            "s_client",
            "-connect",
            f"127.0.0.1:{env.https_port}",
            "-servername",
            NAME,
            "-tls1_3",
            "-ciphersuites",
            suites,
            "-brief",
        ],
        input=b"",
        capture_output=True,
        timeout=20,
        check=False,
    )
    output = (result.stdout + result.stderr).decode(errors="replace")
    for line in output.splitlines():
        if line.startswith("Ciphersuite:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"s_client reported no suite:\n{output}")


def test_a_configured_context_lists_aes_128_first() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tlsconfig.configure(context)
    names = [cipher["name"] for cipher in context.get_ciphers()]
    assert names[:3] == tls13suites.PREFERRED_SUITES.split(":")
    # TLS 1.2 likewise, and still only forward-secret AEAD suites.
    tls12 = [name for name in names if not name.startswith("TLS_")]
    assert tls12[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert all(name.startswith("ECDHE-") for name in tls12)
    assert all("GCM" in name or "CHACHA20" in name for name in tls12)
    assert context.options & tls13suites.OP_PRIORITIZE_CHACHA


async def test_a_default_client_gets_aes_128_over_tls_1_3_and_1_2() -> None:
    async with running_edge() as env:
        env.add_domain(NAME)
        tls13 = await asyncio.to_thread(_negotiated_by_python, env, ssl.TLSVersion.TLSv1_3)
        tls12 = await asyncio.to_thread(_negotiated_by_python, env, ssl.TLSVersion.TLSv1_2)
    # Python's client lists AES-256 first; the edge's order decides.
    assert tls13 == "TLS_AES_128_GCM_SHA256"
    assert tls12 == "ECDHE-ECDSA-AES128-GCM-SHA256"


async def test_a_client_that_lists_chacha_first_gets_chacha() -> None:
    async with running_edge() as env:
        env.add_domain(NAME)
        chacha_first = await asyncio.to_thread(
            _negotiated_by_s_client, env, "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
        )
        aes_256_first = await asyncio.to_thread(
            _negotiated_by_s_client, env, "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"
        )
        only_aes_256 = await asyncio.to_thread(
            _negotiated_by_s_client, env, "TLS_AES_256_GCM_SHA384"
        )
    assert chacha_first == "TLS_CHACHA20_POLY1305_SHA256"
    assert aes_256_first == "TLS_AES_128_GCM_SHA256"
    assert only_aes_256 == "TLS_AES_256_GCM_SHA384"


def test_without_the_openssl_calls_the_default_order_stays(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sslctx, "_calls", lambda: None)
    tls13suites.note_unavailable_once.cache_clear()
    caplog.set_level(logging.INFO, logger="linkcert.edge.tls13suites")
    for _ in range(2):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tlsconfig.configure(context)
        assert context.get_ciphers()[0]["name"] == "TLS_AES_256_GCM_SHA384"
    assert sum("default order" in record.getMessage() for record in caplog.records) == 1
    tls13suites.note_unavailable_once.cache_clear()


def test_a_context_whose_pointer_does_not_check_out_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stands for a Python whose _SSLContext is laid out differently: the options read through
    # the supposed pointer do not match, so nothing is written through it.
    monkeypatch.setattr(sslctx, "_raw_pointer", lambda context: None)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert tls13suites.prefer_fast_suites(context) is False
    assert context.get_ciphers()[0]["name"] == "TLS_AES_256_GCM_SHA384"
