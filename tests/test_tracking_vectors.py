"""docs/tracking-vectors.json against the code, and against a reader written from the spec.

The reference reader below follows docs/tracking-links.md step by step with nothing but the
standard library, as a team writing it in another language would: if the spec and the code
part ways, one of these tests fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from linkcert.tracking import (
    InvalidToken,
    Minter,
    TrackingKeys,
    read_token,
    tracking_key_from_secret,
)

VECTORS = json.loads(
    (Path(__file__).resolve().parent.parent / "docs" / "tracking-vectors.json").read_text()
)
KEYS = TrackingKeys(
    [(entry["key_id"], bytes.fromhex(entry["key_hex"])) for entry in VECTORS["keys"]]
)


def test_keys_derive_from_their_secrets() -> None:
    for entry in VECTORS["keys"]:
        assert tracking_key_from_secret(entry["secret"]).hex() == entry["key_hex"]
        label = b"linkcert tracking token key v1\x00"
        assert hashlib.sha256(label + entry["secret"].encode()).hexdigest() == entry["key_hex"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vectors_mint_exactly(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(
        next(k["key_hex"] for k in VECTORS["keys"] if k["key_id"] == vector["key_id"])
    )
    minter = Minter(
        TrackingKeys([(vector["key_id"], key)]), vector["domain"], epoch=vector["epoch"]
    )
    data = bytes.fromhex(vector["data_hex"])
    token = minter.token(
        vector["destination"], data, link_id=vector["link_id"], minted_at=vector["minted_at"]
    )
    assert token == vector["token"]
    assert f"https://{vector['domain']}/c/{token}" == vector["click_url"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vectors_read_back(vector: dict[str, Any]) -> None:
    link = read_token(KEYS, vector["domain"], vector["token"])
    assert link.version == 2
    assert link.key_id == vector["key_id"]
    assert link.destination == vector["destination"]
    assert link.data == bytes.fromhex(vector["data_hex"])
    assert link.minted_at == vector["minted_at"]
    assert link.epoch == vector["epoch"]
    assert link.link_id == vector["link_id"]
    assert _reference_read(vector["domain"], vector["token"]) == {
        "key_id": vector["key_id"],
        "destination": vector["destination"],
        "data_hex": vector["data_hex"],
        "minted_at": vector["minted_at"],
        "epoch": vector["epoch"],
        "link_id": vector["link_id"],
    }


@pytest.mark.parametrize("vector", VECTORS["version1"], ids=lambda v: v["name"])
def test_version_1_vectors_read(vector: dict[str, Any]) -> None:
    link = read_token(KEYS, vector["domain"], vector["token"])
    assert (link.version, link.link_id, link.destination) == (
        1,
        vector["link_id"],
        vector["destination"],
    )


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vectors_are_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken) as caught:
        read_token(KEYS, vector["domain"], vector["token"])
    assert caught.value.reason == vector["reason"]
    assert _reference_read(vector["domain"], vector["token"]) is None


def test_the_file_is_what_the_generator_writes() -> None:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "make_tracking_vectors.py"
    spec = importlib.util.spec_from_file_location("make_tracking_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.build() == VECTORS


# The reference reader ---------------------------------------------------------------------


def _varint(raw: bytes, at: int) -> tuple[int, int] | None:
    value = shift = 0
    for count in range(9):
        if at + count >= len(raw):
            return None
        byte = raw[at + count]
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return (value, at + count + 1) if value < 2**63 else None
    return None


def _reference_read(domain: str, token: str) -> dict[str, Any] | None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if not token or any(c not in alphabet for c in token) or len(token) % 4 == 1:
        return None
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        return None  # not the canonical spelling
    if len(raw) < 17 or raw[0] != 2:
        return None
    keys = {k["key_id"]: bytes.fromhex(k["key_hex"]) for k in VECTORS["keys"]}
    key = keys.get(raw[1])
    if key is None:
        return None
    payload, tag = raw[:-16], raw[-16:]
    name = domain.lower().rstrip(".").encode("ascii")
    expected = hmac.new(key, name + b"\x00" + payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(tag, expected):
        return None
    if len(payload) < 3 or payload[2] & 0xFE:
        return None
    fields: dict[str, Any] = {"key_id": raw[1]}
    at = 3
    for name_ in ("minted_at", "epoch"):
        read = _varint(payload, at)
        if read is None:
            return None
        fields[name_], at = read
    fields["link_id"] = None
    if payload[2] & 1:
        read = _varint(payload, at)
        if read is None:
            return None
        fields["link_id"], at = read
    if at >= len(payload):
        return None
    length = payload[at]
    data = payload[at + 1 : at + 1 + length]
    destination = payload[at + 1 + length :]
    if len(data) != length or not destination or any(not 0x21 <= b <= 0x7E for b in destination):
        return None
    fields["data_hex"] = data.hex()
    fields["destination"] = destination.decode("ascii")
    return fields
