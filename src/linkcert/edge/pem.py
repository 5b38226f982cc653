"""Just enough PEM to store certificates and keys as DER and give them back to OpenSSL.

DER is three quarters the size of PEM, and the intermediate certificates that every domain's
chain shares can be stored once; with 100,000 domains in memory that matters.
"""

from __future__ import annotations

import base64
import binascii
import re

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
CERTIFICATE = "CERTIFICATE"
PRIVATE_KEY_LABELS = frozenset({"PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"})


class PemError(ValueError):
    """PEM text that cannot be stored; the message says what was expected."""


def pem_blocks(text: bytes) -> list[tuple[str, bytes]]:
    """The (label, DER) pairs of every PEM block in `text`, in order."""
    blocks = []
    for match in _BLOCK.finditer(text):
        label = match.group(1).decode("ascii")
        body = match.group(2)
        if b":" in body:
            raise PemError(
                f"the {label} block has PEM headers (an encrypted key?): give it unencrypted"
            )
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise PemError(f"the {label} block is not valid base64") from None
        blocks.append((label, der))
    return blocks


def certificates_from_pem(chain_pem: bytes) -> list[bytes]:
    """The DER certificates of a chain, leaf first; at least one, nothing else allowed."""
    blocks = pem_blocks(chain_pem)
    if not blocks:
        raise PemError("the certificate chain has no PEM block: expected -----BEGIN CERTIFICATE")
    for label, _ in blocks:
        if label != CERTIFICATE:
            raise PemError(f"the certificate chain holds a {label} block; pass keys separately")
    return [der for _, der in blocks]


def private_key_from_pem(key_pem: bytes) -> tuple[str, bytes]:
    """The (label, DER) of the one private key in `key_pem`."""
    blocks = pem_blocks(key_pem)
    if len(blocks) != 1 or blocks[0][0] not in PRIVATE_KEY_LABELS:
        found = ", ".join(label for label, _ in blocks) or "nothing"
        raise PemError(f"expected exactly one unencrypted PRIVATE KEY block, found {found}")
    return blocks[0]


def to_pem(label: str, der: bytes) -> bytes:
    """One PEM block, with the 64-character lines that every reader accepts."""
    encoded = base64.b64encode(der)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    head = f"-----BEGIN {label}-----\n".encode("ascii")
    tail = f"-----END {label}-----\n".encode("ascii")
    return head + b"\n".join(lines) + b"\n" + tail
