"""Private keys: generation, and encryption at rest under the operator's master key.

The master key setting holds one or more keys, `ID:BASE64URL`, comma-separated. The first one
encrypts; all of them decrypt, which is what makes rotation possible: add a new key in front,
run `linkcert keys rotate` to re-encrypt every stored key under it, then drop the old one.
Each ciphertext names the key that made it and is bound to what it protects (the associated
data), so a key blob copied onto another row does not decrypt there.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from linkcert.config import Settings

BLOB_MAGIC = b"LCK1"
NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class MasterKeyError(Exception):
    """The master key setting is missing or malformed; the message says how to fix it."""


class DecryptionError(Exception):
    """A stored key could not be decrypted: wrong master key, or the data was altered."""


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class MasterKeys:
    """The operator's master keys: `current` encrypts, every key decrypts."""

    current_id: str
    keys: dict[str, bytes]

    @classmethod
    def from_settings(cls, settings: Settings) -> MasterKeys:
        """The master keys the settings give (`master_key`, or the file `master_key_file`).

        The one place they are built from settings. MasterKeyError when there is none or one
        is malformed; ConfigError when the file cannot be read.
        """
        return cls.parse(settings.master_key_text())

    @classmethod
    def parse(cls, text: str | None) -> MasterKeys:
        if text is None or not text.strip():
            raise MasterKeyError(
                "no master key: set LINKCERT_MASTER_KEY (or master_key_file) to the output "
                "of `linkcert keys generate`; private keys are never stored unencrypted"
            )
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            key_id, sep, material = entry.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise MasterKeyError(
                    "the master key must look like ID:KEY (as printed by `linkcert keys "
                    "generate`), several separated by commas"
                )
            try:
                raw = _b64decode(material)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                raise MasterKeyError(f"master key {key_id!r} is not valid base64url") from None
            if len(raw) != 32:
                raise MasterKeyError(f"master key {key_id!r} must be 32 bytes (AES-256)")
            if key_id in keys:
                raise MasterKeyError(f"master key id {key_id!r} appears twice")
            keys[key_id] = raw
            order.append(key_id)
        if not order:
            raise MasterKeyError("the master key setting is empty")
        return cls(current_id=order[0], keys=keys)

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt under the current key, bound to `context` (e.g. "cert-key:links.a.com")."""
        nonce = os.urandom(NONCE_BYTES)
        kid = self.current_id.encode("ascii")
        sealed = AESGCM(self.keys[self.current_id]).encrypt(nonce, plaintext, context.encode())
        return BLOB_MAGIC + bytes([len(kid)]) + kid + nonce + sealed

    def decrypt(self, blob: bytes, context: str) -> bytes:
        key_id = blob_key_id(blob)
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptionError(
                f"stored key was encrypted with master key {key_id!r}, which is not configured"
            )
        start = len(BLOB_MAGIC) + 1 + len(key_id)
        nonce, sealed = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        try:
            return AESGCM(key).decrypt(nonce, sealed, context.encode())
        except InvalidTag:
            raise DecryptionError(
                f"stored key does not decrypt with master key {key_id!r} (altered or misplaced)"
            ) from None

    def needs_rotation(self, blob: bytes) -> bool:
        return blob_key_id(blob) != self.current_id


def blob_key_id(blob: bytes) -> str:
    """The id of the master key that encrypted `blob`."""
    if not blob.startswith(BLOB_MAGIC) or len(blob) < len(BLOB_MAGIC) + 1:
        raise DecryptionError("stored key is not in linkcert's encrypted format")
    length = blob[len(BLOB_MAGIC)]
    kid = blob[len(BLOB_MAGIC) + 1 : len(BLOB_MAGIC) + 1 + length]
    if len(kid) != length:
        raise DecryptionError("stored key is truncated")
    return kid.decode("ascii", errors="replace")


def generate_master_key(key_id: str | None = None) -> str:
    """A fresh master key in the form the setting takes."""
    kid = key_id or "mk" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    if not _KEY_ID.match(kid):
        raise MasterKeyError("a key id takes letters, digits, '.', '_' and '-' (at most 64)")
    return f"{kid}:{_b64encode(secrets.token_bytes(32))}"


def generate_private_key(kind: str = "ec256") -> PrivateKey:
    """A new certificate key: ECDSA P-256 by default, RSA 2048 or 3072 by setting."""
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind in ("rsa2048", "rsa3072"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    raise ValueError(f"unknown key type {kind!r}: use ec256, rsa2048 or rsa3072")


def private_key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only ECDSA and RSA private keys are supported")
    return key
