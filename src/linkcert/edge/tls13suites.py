"""The order of the TLS 1.3 cipher suites, which Python's ssl module cannot set.

OpenSSL's default order puts TLS_AES_256_GCM_SHA384 first. Every TLS 1.3 handshake runs its
key schedule and transcript through the suite's hash, and SHA-384 has no instructions of its
own on x86-64 CPUs while SHA-256 has (SHA-NI): with AES-128-GCM/SHA-256 first, the edge's server
side of a full handshake costs about a tenth less CPU (bench/RESULTS.md, "Edge"). Both suites
are in every TLS 1.3 implementation and both are strong; Go's TLS stack, which Caddy uses,
makes the same choice on CPUs with AES instructions. With OpenSSL's "prioritize ChaCha" option,
a client that lists ChaCha20-Poly1305 first (a phone without AES instructions says so that
way) still gets it.

`ssl.SSLContext` offers `set_ciphers` (TLS 1.2 and older only) and no `set_ciphersuites`, so
this calls `SSL_CTX_set_ciphersuites` from the very libssl the `_ssl` module is linked with,
on the `SSL_CTX` pointer that CPython keeps as the first field after the object header of
every `_ssl._SSLContext` (true of every CPython 3 release to date). Before writing anything
it checks that pointer by reading the context's options through OpenSSL and comparing them
with what Python reports; afterwards it checks the new order through `get_ciphers()`. Where
any of this does not hold (another Python, a statically linked `_ssl`), it changes nothing
and the edge keeps OpenSSL's default order, which is just as safe and slightly slower.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

logger = logging.getLogger(__name__)

PREFERRED_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
# SSL_OP_PRIORITIZE_CHACHA (OpenSSL 1.1.1 and later; ssl has no constant for it): with server
# preference on, choose ChaCha20-Poly1305 when the client lists it first.
OP_PRIORITIZE_CHACHA = 1 << 21

# The CPython releases whose _ssl._SSLContext is known to start with `SSL_CTX *ctx`.
_KNOWN_PYTHONS = ((3, 10), (3, 11), (3, 12), (3, 13), (3, 14))


@dataclass(frozen=True)
class _OpenSSLCalls:
    get_options: Callable[[int], int]
    set_ciphersuites: Callable[[int, bytes], int]


@cache
def _openssl_calls() -> _OpenSSLCalls | None:
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in _KNOWN_PYTHONS:
        return None
    import _ssl

    path = getattr(_ssl, "__file__", None)
    if not path:
        return None  # _ssl built into the interpreter: no library handle to look in
    try:
        # dlsym on the extension's handle also searches the libraries it was linked with, so
        # these are the functions of the libssl that _ssl itself calls.
        library = ctypes.CDLL(path)
        get_options: Any = library.SSL_CTX_get_options
        set_ciphersuites: Any = library.SSL_CTX_set_ciphersuites
    except (OSError, AttributeError):
        return None
    get_options.argtypes = [ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    set_ciphersuites.restype = ctypes.c_int
    return _OpenSSLCalls(get_options, set_ciphersuites)


def _ssl_ctx_pointer(context: ssl.SSLContext) -> int | None:
    # The field right after PyObject_HEAD, whose size object.__basicsize__ is.
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    return pointer or None


def prefer_fast_suites(context: ssl.SSLContext) -> bool:
    """Order `context`'s TLS 1.3 suites as PREFERRED_SUITES; returns whether that took effect."""
    context.options |= OP_PRIORITIZE_CHACHA
    calls = _openssl_calls()
    if calls is None:
        return False
    pointer = _ssl_ctx_pointer(context)
    if pointer is None or calls.get_options(pointer) != int(context.options):
        return False
    if calls.set_ciphersuites(pointer, PREFERRED_SUITES.encode()) != 1:
        return False
    return context.get_ciphers()[0]["name"] == PREFERRED_SUITES.split(":", 1)[0]


def note_unavailable_once() -> None:
    """Log, once per process, that the edge keeps OpenSSL's default suite order."""
    _note_unavailable()


@cache
def _note_unavailable() -> None:
    logger.info(
        "TLS 1.3 suites stay in OpenSSL's default order on this Python (%s %s): handshakes cost"
        " slightly more CPU",
        sys.implementation.name,
        ".".join(map(str, sys.version_info[:3])),
    )
