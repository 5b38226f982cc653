"""Write docs/tracking-vectors.json: the tracking token test vectors of docs/tracking-links.md.

    .venv/bin/python scripts/make_tracking_vectors.py

The vectors are fixed inputs (keys, domains, times, data); running this again gives the same
file. tests/test_tracking_vectors.py checks the file against the code, both ways.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from linkcert.tracking import Minter, TrackingKeys, make_token, tracking_key_from_secret

OUT = Path(__file__).resolve().parent.parent / "docs" / "tracking-vectors.json"

SECRETS = {
    1: "first operator secret, long enough to be a key",
    2: "second operator secret, minting after a rotation",
}


def _key(key_id: int) -> bytes:
    return tracking_key_from_secret(SECRETS[key_id])


def _valid(
    name: str,
    *,
    key_id: int,
    domain: str,
    destination: str,
    data: bytes = b"",
    minted_at: int = 1_767_225_600,
    epoch: int = 0,
    link_id: int | None = None,
) -> dict[str, Any]:
    minter = Minter(TrackingKeys([(key_id, _key(key_id))]), domain, epoch=epoch)
    token = minter.token(destination, data, link_id=link_id, minted_at=minted_at)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return {
        "name": name,
        "version": 2,
        "key_id": key_id,
        "domain": domain,
        "destination": destination,
        "data_hex": data.hex(),
        "minted_at": minted_at,
        "epoch": epoch,
        "link_id": link_id,
        "payload_hex": raw[:-16].hex(),
        "tag_hex": raw[-16:].hex(),
        "token": token,
        "click_url": minter.url(destination, data, link_id=link_id, minted_at=minted_at),
    }


def _forged(payload: bytes, key: bytes, domain: str) -> str:
    tag = hmac.digest(key, domain.encode() + b"\x00" + payload, hashlib.sha256)[:16]
    return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()


def build() -> dict[str, Any]:
    valid = [
        _valid(
            "plain link, no data, no link id",
            key_id=1,
            domain="links.example.com",
            destination="https://shop.example.net/spring-sale",
        ),
        _valid(
            "ASCII data and a link id",
            key_id=1,
            domain="links.example.com",
            destination="https://shop.example.net/p/42?utm_source=email&utm_campaign=spring",
            data=b"msg=8f3a2c;rcpt=1029384756;camp=spring-2026",
            link_id=300,
            minted_at=1_767_225_601,
        ),
        _valid(
            "binary data of the maximum length (255 bytes), epoch 7, second key",
            key_id=2,
            domain="links.example.com",
            destination="http://example.org/",
            data=bytes(range(256))[1:],
            minted_at=1_800_000_000,
            epoch=7,
        ),
        _valid(
            "internationalized domain in its A-label form, largest varints",
            key_id=2,
            domain="xn--lnks-6qa.example",
            destination="https://example.org/a%20b?q=%C3%BC#frag",
            data=b"\x00\xff\x00",
            minted_at=2**63 - 1,
            epoch=2**63 - 1,
            link_id=2**63 - 1,
        ),
    ]
    key1 = _key(1)
    good = valid[0]["token"]
    v1 = make_token(key1, "links.example.com", 1234, "https://example.com/sale?x=1")
    invalid = [
        {
            "name": "a valid token read on another domain",
            "domain": "links.other.example",
            "token": good,
            "reason": "signature",
        },
        {
            "name": "one character changed",
            "domain": "links.example.com",
            "token": good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:],
            "reason": "signature",
        },
        {
            "name": "key id not among the keys in force (rotated out)",
            "domain": "links.example.com",
            "token": _forged(bytes([2, 9, 0, 0, 0, 0]) + b"http://example.org/", key1, "x"),
            "reason": "key",
        },
        {
            "name": "unknown flag bit set, correctly signed",
            "domain": "links.example.com",
            "token": _forged(
                bytes([2, 1, 2, 0, 0, 0]) + b"http://example.org/", key1, "links.example.com"
            ),
            "reason": "payload",
        },
        {
            "name": "padding characters",
            "domain": "links.example.com",
            "token": good + "==",
            "reason": "malformed",
        },
        {
            "name": "a character of the standard base64 alphabet ('+'), not base64url",
            "domain": "links.example.com",
            "token": good[:-1] + "+",
            "reason": "malformed",
        },
    ]
    return {
        "description": (
            "Test vectors for linkcert tracking tokens; see docs/tracking-links.md. Each key is "
            "SHA-256(\"linkcert tracking token key v1\\0\" + secret as UTF-8). 'valid' vectors "
            "must mint to exactly 'token' and read back to the same fields; 'invalid' ones "
            "must be refused (the reason is linkcert's word for it, for information)."
        ),
        "keys": [
            {"key_id": key_id, "secret": secret, "key_hex": _key(key_id).hex()}
            for key_id, secret in SECRETS.items()
        ],
        "valid": valid,
        "version1": [
            {
                "name": "a version 1 token (still read; carries no key id: try each key)",
                "domain": "links.example.com",
                "token": v1,
                "link_id": 1234,
                "destination": "https://example.com/sale?x=1",
            }
        ],
        "invalid": invalid,
    }


def main() -> None:
    vectors = build()
    OUT.write_text(json.dumps(vectors, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
