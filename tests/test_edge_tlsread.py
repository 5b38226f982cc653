"""Reading TLS records: whatever arrives in one read is decrypted whole, in record-sized steps."""

from __future__ import annotations

import ssl

from linkcert.edge.certs import CertificateCache
from linkcert.edge.tlssession import TlsSession
from tests.edge_support import TestAuthority, get, read_response, running_edge

NAME = "read.example.test"


def _pair() -> tuple[TlsSession, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    authority = TestAuthority()
    issued = authority.issue(NAME)
    cache = CertificateCache()
    cache.put(NAME, issued.chain_pem, issued.key_pem, 1)
    context = cache.context_for(NAME)
    assert context is not None
    server = TlsSession(context)
    to_client, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = authority.client_context().wrap_bio(to_client, from_client, server_hostname=NAME)
    while True:
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            server.receive(from_client.read())
            to_client.write(server.take_output())
    return server, client, to_client, from_client


def test_many_records_in_one_read_come_out_as_one_plaintext() -> None:
    server, client, _, from_client = _pair()
    # 40 writes of 5,000 bytes: 40 records, 200,000 bytes, far more than one record holds.
    sent = [bytes([65 + n % 26]) * 5000 for n in range(40)]
    for part in sent:
        client.write(part)
    assert server.receive(from_client.read()) == b"".join(sent)


def test_a_record_larger_than_16_kib_of_plaintext_is_split_by_tls_and_rejoined() -> None:
    server, client, _, from_client = _pair()
    client.write(b"x" * 70_000)  # TLS splits this into records of at most 16 KiB
    assert server.receive(from_client.read()) == b"x" * 70_000


async def test_two_hundred_pipelined_requests_in_one_write_over_tls() -> None:
    async with running_edge() as env:
        env.add_domain(NAME)
        tokens = [env.token(NAME, n, f"https://dest.example/{n}") for n in range(200)]
        reader, writer = await env.open_https(NAME)
        writer.write(b"".join(get(f"/c/{token}", NAME) for token in tokens))
        locations = [(await read_response(reader)).header("location") for _ in tokens]
        writer.close()
        assert locations == [f"https://dest.example/{n}" for n in range(200)]
