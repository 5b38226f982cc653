"""The TLS settings every edge context shares, and loading a key into OpenSSL from memory."""

from __future__ import annotations

import os
import ssl

from linkcert.edge import tls13suites

ALPN_PROTOCOLS = ["http/1.1"]
# TLS 1.2 suites with forward secrecy and AEAD only, AES-128-GCM first as for TLS 1.3
# (tls13suites.py says why); TLS 1.3 suites are all fine, only their order is changed.
TLS12_CIPHERS = "ECDHE+AES128+AESGCM:ECDHE+AESGCM:ECDHE+CHACHA20"


def configure(context: ssl.SSLContext, *, session_tickets: bool = False) -> None:
    """Apply the edge's protocol settings: TLS 1.2 or newer, modern suites, ALPN http/1.1, and
    session tickets only when asked for.

    Both the listener's context and each domain's get these, because after the SNI switch
    OpenSSL reads some settings (ALPN) from the domain's context and others (versions, cipher
    list) from the listener's.
    """
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    # Renegotiation is an old attack surface and would make a write wait for a read.
    context.options |= (
        ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    )
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    # AES-128-GCM first: a tenth less CPU per handshake than OpenSSL's AES-256 first order.
    if not tls13suites.prefer_fast_suites(context):
        tls13suites.note_unavailable_once()
    # Each edge process draws its own ticket keys, so behind SO_REUSEPORT a ticket usually comes
    # back to a process that cannot read it: it would cost bytes and CPU and save nothing,
    # unless the processes share keys (SniSelector.use_ticket_keys).
    # OpenSSL takes the ticket count and keys from the listener's context, not the domain's.
    # (TLS 1.2 session-ID resumption within one process stays: Python cannot turn it off.)
    issue_tickets(context, count=2 if session_tickets else 0)


def issue_tickets(context: ssl.SSLContext, *, count: int) -> None:
    """Hand out `count` session tickets per handshake (OpenSSL's default is 2); 0 for none."""
    if count:
        context.options &= ~ssl.OP_NO_TICKET
    else:
        context.options |= ssl.OP_NO_TICKET
    context.num_tickets = count


def load_chain_from_memory(context: ssl.SSLContext, chain_and_key_pem: bytes) -> None:
    """Load a certificate chain and its key from memory into `context`.

    `SSLContext.load_cert_chain` only reads files. An anonymous memory file (memfd) gives it a
    path, `/proc/self/fd/N`, without the private key ever touching a disk; the descriptor is
    closed as soon as OpenSSL has read it.
    """
    fd = os.memfd_create("linkcert-edge-chain", os.MFD_CLOEXEC)
    try:
        view = memoryview(chain_and_key_pem)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
