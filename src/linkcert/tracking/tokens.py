"""Signed tracking tokens: the path segment of `https://DOMAIN/c/<token>`.

A token carries everything the edge needs to redirect without a database read: the link id and
the destination URL, signed with HMAC-SHA256 over the payload and the tracking domain. Binding the
domain into the tag means a link minted for one customer's domain does not redirect on another's.

Layout before base64url (no padding):

    version (1 byte) | link id (unsigned LEB128 varint) | destination (ASCII) | tag (16 bytes)

The tag is the first 16 bytes of HMAC-SHA256(key, domain + NUL + payload), where the payload is
everything before the tag. NUL cannot occur in a domain name, so the split is unambiguous.

The domain's link epoch (`Domain.link_epoch`) is signed too, without a byte in the token: for an
epoch other than 0 the signed name is `domain + NUL + "e" + epoch in decimal`. Deleting or
releasing a name, or a change of its owner, raises the epoch, so every link made before stops
verifying for good; a name's epoch stays the same while its owner keeps it (a replaced domain
keeps serving its links). Epoch 0, every name's before epochs existed, signs exactly as
before, so links minted earlier keep working. The payload's first byte is the version (1),
never "e", so the two forms cannot be confused.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

TOKEN_VERSION = 1
TAG_BYTES = 16
MAX_DESTINATION_CHARS = 2048
MAX_LINK_ID = 2**63 - 1  # fits a signed 64-bit database column
MIN_SECRET_CHARS = 32
TRACKING_KEY_SETTING = "LINKCERT_TRACKING_KEY"

_VERSION_BYTE = bytes([TOKEN_VERSION])
_MAX_VARINT_BYTES = 9  # 63 bits at 7 bits a byte
_MIN_KEY_BYTES = 16
# Version byte, the shortest varint, the shortest accepted URL ("http://a"), the tag.
_MIN_RAW_BYTES = 1 + 1 + len("http://a") + TAG_BYTES
_MAX_RAW_BYTES = 1 + _MAX_VARINT_BYTES + MAX_DESTINATION_CHARS + TAG_BYTES
# Base64 without padding: four characters per three bytes, rounded up.
MAX_TOKEN_CHARS = (_MAX_RAW_BYTES * 4 + 2) // 3
_MIN_TOKEN_CHARS = (_MIN_RAW_BYTES * 4 + 2) // 3
_KEY_DERIVATION_LABEL = b"linkcert tracking token key v1\x00"
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")  # by length % 4 (1 is never a base64 length)
# Last characters whose unused low bits are zero, by length % 4: 4 unused bits after two
# characters of a group (values that are multiples of 16), 2 after three (multiples of 4).
_CANONICAL_LAST = (b"", b"", _ALPHABET[::16], _ALPHABET[::4])
_VISIBLE_ASCII = bytes(range(0x21, 0x7F))
# Maps each byte to 1 if its continuation bit (0x80) is set, else to 0.
_CONTINUATION_MARKS = bytes(byte >> 7 for byte in range(256))
_SHA256_BLOCK = 64
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))  # translate tables: XOR every byte
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))

TrackedKind = Literal["click", "open"]
_PATH_PREFIX: dict[TrackedKind, str] = {"click": "/c/", "open": "/o/"}


class InvalidToken(ValueError):
    """The token was not minted by this platform for this domain, or was damaged on the way.

    `reason` is a short stable word for counters ("malformed", "signature", "payload"); the
    message never contains the token itself.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"tracking token is not valid ({reason})")
        self.reason = reason


class InvalidDestination(ValueError):
    """A destination URL that a tracked link may not point to; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class TrackedLink:
    """What a valid token says: which link was followed and where it goes."""

    link_id: int
    destination: str


def tracking_key_from_secret(secret: str) -> bytes:
    """Derive the 32-byte HMAC key from the operator's secret setting.

    The derivation keeps the raw secret out of the HMAC so the same setting could later seed
    other keys without them being related.
    """
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"{TRACKING_KEY_SETTING} must be at least {MIN_SECRET_CHARS} characters long "
            f"(it has {len(secret)}); generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
    return hashlib.sha256(_KEY_DERIVATION_LABEL + secret.encode("utf-8")).digest()


def check_destination(url: str) -> str:
    """Return `url` unchanged if a tracked link may redirect to it, else raise InvalidDestination.

    Accepted: absolute http or https URLs of at most 2,048 printable ASCII characters, with a
    host and without credentials. Non-ASCII text and spaces must be percent-encoded first (and
    an internationalized host given in its punycode form), so the URL is sent to browsers exactly
    as the customer wrote it.
    """
    if not isinstance(url, str):
        raise InvalidDestination(f"destination must be a string, not {type(url).__name__}")
    shown = url if len(url) <= 80 else url[:77] + "..."
    if len(url) > MAX_DESTINATION_CHARS:
        raise InvalidDestination(
            f"destination URL is {len(url):,} characters long; the limit is "
            f"{MAX_DESTINATION_CHARS:,}: shorten it ({shown!r})"
        )
    if not url.isascii():
        raise InvalidDestination(
            "destination URL contains non-ASCII characters: percent-encode them and give an "
            f"internationalized host in its punycode (xn--) form ({shown!r})"
        )
    for position, char in enumerate(url):
        if char <= " " or char == "\x7f":
            raise InvalidDestination(
                f"destination URL contains a space or control character at position {position}: "
                f"percent-encode it ({shown!r})"
            )
        if char == "\\":
            raise InvalidDestination(
                f"destination URL contains a backslash at position {position}, which browsers "
                f"read as '/': percent-encode it as %5C ({shown!r})"
            )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise InvalidDestination(f"destination URL cannot be parsed: {exc} ({shown!r})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidDestination(f"destination URL must start with http:// or https:// ({shown!r})")
    if "@" in parts.netloc:
        raise InvalidDestination(
            f"destination URL must not contain credentials (user:password@) ({shown!r})"
        )
    if not parts.hostname:
        raise InvalidDestination(f"destination URL has no host ({shown!r})")
    return url


def make_token(key: bytes, domain: str, link_id: int, destination: str, epoch: int = 0) -> str:
    """Mint the token for `link_id` on the tracking `domain` (ASCII form, as in the Host header)
    in the domain's link `epoch`.

    Raises InvalidDestination for a destination that `check_destination` refuses and ValueError
    for an out-of-range link id, a non-ASCII domain or a key shorter than 16 bytes.
    """
    _check_key(key)
    if isinstance(link_id, bool) or not isinstance(link_id, int):
        raise ValueError(f"link_id must be an int, not {type(link_id).__name__}")
    if not 0 <= link_id <= MAX_LINK_ID:
        raise ValueError(f"link_id must be between 0 and {MAX_LINK_ID}, not {link_id}")
    domain_bytes = _domain_bytes(domain)
    if domain_bytes is None:
        raise ValueError(
            f"tracking domain {domain!r} must be given in ASCII (A-label, xn--) form, non-empty"
        )
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative int, not {epoch!r}")
    payload = _VERSION_BYTE + _encode_varint(link_id) + check_destination(destination).encode()
    raw = payload + _tag(key, _signed_name(domain_bytes, epoch), payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_token(key: bytes, domain: str, token: str, epoch: int = 0) -> TrackedLink:
    """Verify `token` for `domain` in its link `epoch` and return its link; raise InvalidToken
    for anything else.

    Only InvalidToken escapes for any string input: the edge feeds it whatever a client sent.
    """
    if (
        not isinstance(token, str)
        or not _MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS
        or not token.isascii()
    ):
        raise InvalidToken("malformed")
    encoded = token.encode("ascii")
    # Only the canonical spelling is accepted, so every token has exactly one form: alphabet
    # characters only, no padding, a length base64 can produce, and zero unused low bits in the
    # last character (a decoder would silently drop them). Checked on the bytes, without
    # re-encoding: every click comes through here.
    remainder = len(encoded) % 4
    if (
        encoded.translate(None, _ALPHABET)
        or remainder == 1
        or (remainder and encoded[-1] not in _CANONICAL_LAST[remainder])
    ):
        raise InvalidToken("malformed")
    raw = binascii.a2b_base64(encoded.translate(_URLSAFE_TO_STANDARD) + _PADDING[remainder])
    domain_bytes = _domain_bytes(domain) if isinstance(domain, str) else None
    if domain_bytes is None:
        raise InvalidToken("signature")
    payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    if epoch:
        domain_bytes = _signed_name(domain_bytes, epoch)
    if not hmac.compare_digest(tag, _tag(key, domain_bytes, payload)):
        raise InvalidToken("signature")
    return _decode_payload(payload)


def tracked_url(domain: str, token: str, kind: TrackedKind = "click") -> str:
    """The URL to put in an email: `https://DOMAIN/c/<token>` or, for the open pixel, `/o/`."""
    return f"https://{domain}{_PATH_PREFIX[kind]}{token}"


def _decode_payload(payload: bytes) -> TrackedLink:
    # Only reached with a valid tag, so a failure here means a token from a newer minting code
    # (another version byte) or a bug; either way it is not a link this reader can follow.
    if len(payload) < 3 or payload[0] != TOKEN_VERSION:
        raise InvalidToken("payload")
    # The varint ends at its first byte without the continuation bit, within 9 bytes.
    end = payload.translate(_CONTINUATION_MARKS).find(0, 1, 1 + _MAX_VARINT_BYTES) + 1
    if not end:
        raise InvalidToken("payload")
    link_id = 0
    shift = 0
    for byte in payload[1:end]:
        link_id |= (byte & 0x7F) << shift
        shift += 7
    if link_id > MAX_LINK_ID:
        raise InvalidToken("payload")
    destination = payload[end:]
    # The destination goes into a Location header: only visible ASCII, which cannot split it.
    if destination.translate(None, _VISIBLE_ASCII):
        raise InvalidToken("payload")
    return TrackedLink(link_id, destination.decode("ascii"))


def _signed_name(domain_bytes: bytes, epoch: int) -> bytes:
    return domain_bytes + b"\x00e%d" % epoch if epoch else domain_bytes


def _tag(key: bytes, domain_bytes: bytes, payload: bytes) -> bytes:
    return _hmac_for(key).digest(domain_bytes + b"\x00" + payload)[:TAG_BYTES]


class _HmacSha256:
    """HMAC-SHA256 exactly as RFC 2104 defines it, with the key's two padded blocks hashed
    once: each token then costs two copies of a hash state instead of keying a new HMAC
    (about half the time). `hmac.digest` gives the same bytes (the tests check)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(key.translate(_INNER_PAD))
        self._outer = hashlib.sha256(key.translate(_OUTER_PAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=8)
def _hmac_for(key: bytes) -> _HmacSha256:
    return _HmacSha256(key)


def _domain_bytes(domain: str) -> bytes | None:
    """Lowercase ASCII without a trailing dot, as both minting and reading must agree on."""
    if not domain.isascii():
        return None
    normalized = domain.lower()
    if normalized.endswith("."):
        normalized = normalized[:-1]
    if not normalized or "\x00" in normalized:
        return None
    return normalized.encode("ascii")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < _MIN_KEY_BYTES:
        raise ValueError(
            "the tracking key must be at least 16 bytes; derive it with "
            f"tracking_key_from_secret() from {TRACKING_KEY_SETTING}"
        )
