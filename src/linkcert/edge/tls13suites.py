"""The order of the TLS 1.3 cipher suites, which Python's ssl module cannot set.

OpenSSL's default order puts TLS_AES_256_GCM_SHA384 first. Every TLS 1.3 handshake runs its
key schedule and transcript through the suite's hash, and SHA-384 has no instructions of its
own on x86-64 CPUs while SHA-256 has (SHA-NI): with AES-128-GCM/SHA-256 first, the edge's server
side of a full handshake costs about a tenth less CPU (bench/RESULTS.md, "Edge"). Both suites
are in every TLS 1.3 implementation and both are strong; Go's TLS stack, which Caddy uses,
makes the same choice on CPUs with AES instructions. With OpenSSL's "prioritize ChaCha" option,
a client that lists ChaCha20-Poly1305 first (a phone without AES instructions says so that
way) still gets it.

`ssl.SSLContext` offers `set_ciphers` (TLS 1.2 and older only) and no `set_ciphersuites`;
`sslctx.py` makes the OpenSSL call. Where it cannot, the edge keeps OpenSSL's default order,
which is just as safe and slightly slower.
"""

from __future__ import annotations

import logging
import ssl
import sys
from functools import cache

from linkcert.edge import sslctx

logger = logging.getLogger(__name__)

PREFERRED_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
# SSL_OP_PRIORITIZE_CHACHA (OpenSSL 1.1.1 and later; ssl has no constant for it): with server
# preference on, choose ChaCha20-Poly1305 when the client lists it first.
OP_PRIORITIZE_CHACHA = 1 << 21


def prefer_fast_suites(context: ssl.SSLContext) -> bool:
    """Order `context`'s TLS 1.3 suites as PREFERRED_SUITES; returns whether that took effect."""
    context.options |= OP_PRIORITIZE_CHACHA
    return sslctx.set_ciphersuites(context, PREFERRED_SUITES)


@cache
def note_unavailable_once() -> None:
    """Log, once per process, that the edge keeps OpenSSL's default suite order."""
    logger.info(
        "TLS 1.3 suites stay in OpenSSL's default order on this Python (%s %s): handshakes cost"
        " slightly more CPU",
        sys.implementation.name,
        ".".join(map(str, sys.version_info[:3])),
    )
