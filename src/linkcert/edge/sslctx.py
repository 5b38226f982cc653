"""OpenSSL settings that Python's ssl module has no call for, made on a context's SSL_CTX.

`ssl.SSLContext` cannot order the TLS 1.3 suites (`SSL_CTX_set_ciphersuites`) nor take session
ticket keys (`SSL_CTX_set_tlsext_ticket_keys`). Both are plain calls into the very libssl the
`_ssl` module is linked with, on the `SSL_CTX` pointer that CPython keeps as the first field
after the object header of every `_ssl._SSLContext` (true of every CPython 3 release to date).

Before anything is written, the pointer is checked: the context's options read through OpenSSL
must equal those Python reports. Where any of this does not hold (another Python, a statically
linked `_ssl`), the calls return False and change nothing; callers fall back to what the ssl
module offers.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

# The CPython releases whose _ssl._SSLContext is known to start with `SSL_CTX *ctx`.
_KNOWN_PYTHONS = ((3, 10), (3, 11), (3, 12), (3, 13), (3, 14))
_SSL_CTRL_SET_TLSEXT_TICKET_KEYS = 59  # from OpenSSL's ssl.h, stable since 1.0
TICKET_KEYS_BYTES = 80


@dataclass(frozen=True)
class _OpenSSLCalls:
    get_options: Callable[[int], int]
    set_ciphersuites: Callable[[int, bytes], int]
    ctrl: Callable[[int, int, int, Any], int]


@cache
def _calls() -> _OpenSSLCalls | None:
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
        ctrl: Any = library.SSL_CTX_ctrl
    except (OSError, AttributeError):
        return None
    get_options.argtypes = [ctypes.c_void_p]
    get_options.restype = ctypes.c_uint64
    set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    set_ciphersuites.restype = ctypes.c_int
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    ctrl.restype = ctypes.c_long
    return _OpenSSLCalls(get_options, set_ciphersuites, ctrl)


def _raw_pointer(context: ssl.SSLContext) -> int | None:
    # The field right after PyObject_HEAD, whose size object.__basicsize__ is.
    pointer = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    return pointer or None


def _checked_pointer(context: ssl.SSLContext) -> tuple[_OpenSSLCalls, int] | None:
    calls = _calls()
    if calls is None:
        return None
    pointer = _raw_pointer(context)
    if pointer is None or calls.get_options(pointer) != int(context.options):
        return None
    return calls, pointer


def set_ciphersuites(context: ssl.SSLContext, suites: str) -> bool:
    """Set the TLS 1.3 suites, in order; returns whether OpenSSL took them."""
    checked = _checked_pointer(context)
    if checked is None:
        return False
    calls, pointer = checked
    if calls.set_ciphersuites(pointer, suites.encode("ascii")) != 1:
        return False
    return context.get_ciphers()[0]["name"] == suites.split(":", 1)[0]


def set_ticket_keys(context: ssl.SSLContext, keys: bytes) -> bool:
    """Seal and open session tickets with `keys` (80 bytes); returns whether OpenSSL took them."""
    if len(keys) != TICKET_KEYS_BYTES:
        raise ValueError(f"ticket keys are {TICKET_KEYS_BYTES} bytes, not {len(keys)}")
    checked = _checked_pointer(context)
    if checked is None:
        return False
    calls, pointer = checked
    buffer = ctypes.create_string_buffer(keys, len(keys))
    # OpenSSL copies the bytes into the SSL_CTX; the buffer may go after the call.
    result = calls.ctrl(pointer, _SSL_CTRL_SET_TLSEXT_TICKET_KEYS, len(keys), buffer)
    ctypes.memset(buffer, 0, len(keys))
    return result == 1
