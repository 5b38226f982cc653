import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from linkcert.keys import (
    DecryptionError,
    MasterKeyError,
    MasterKeys,
    generate_master_key,
    generate_private_key,
    private_key_from_pem,
    private_key_to_pem,
)


def test_round_trip_bound_to_context() -> None:
    keys = MasterKeys.parse(generate_master_key("a"))
    blob = keys.encrypt(b"secret key", "cert-key:links.a.com")
    assert b"secret key" not in blob
    assert keys.decrypt(blob, "cert-key:links.a.com") == b"secret key"
    with pytest.raises(DecryptionError):
        keys.decrypt(blob, "cert-key:links.b.com")


def test_wrong_master_key_is_a_clear_error() -> None:
    blob = MasterKeys.parse(generate_master_key("a")).encrypt(b"x", "c")
    other_same_id = MasterKeys.parse(generate_master_key("a"))
    with pytest.raises(DecryptionError, match="does not decrypt"):
        other_same_id.decrypt(blob, "c")
    other_id = MasterKeys.parse(generate_master_key("b"))
    with pytest.raises(DecryptionError, match="not configured"):
        other_id.decrypt(blob, "c")


def test_rotation_keeps_old_keys_for_decryption() -> None:
    old = generate_master_key("old")
    blob = MasterKeys.parse(old).encrypt(b"x", "c")
    rotated = MasterKeys.parse(generate_master_key("new") + "," + old)
    assert rotated.current_id == "new"
    assert rotated.needs_rotation(blob)
    assert rotated.decrypt(blob, "c") == b"x"
    assert not rotated.needs_rotation(rotated.encrypt(b"x", "c"))


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "nokey", "id:", "id:!!!", "id:AAAA", "bad id:" + "A" * 43, "a:x,a:y"],
)
def test_malformed_master_keys(text: str | None) -> None:
    with pytest.raises(MasterKeyError):
        MasterKeys.parse(text)


def test_garbage_blobs() -> None:
    keys = MasterKeys.parse(generate_master_key("a"))
    for blob in (b"", b"LCK1", b"LCK1\x05ab", b"plain pem", keys.encrypt(b"x", "c")[:-1]):
        with pytest.raises(DecryptionError):
            keys.decrypt(blob, "c")


@pytest.mark.parametrize("kind", ["ec256", "rsa2048"])
def test_private_keys(kind: str) -> None:
    key = generate_private_key(kind)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    again = private_key_from_pem(private_key_to_pem(key))
    assert again.public_key().public_numbers() == key.public_key().public_numbers()
    with pytest.raises(ValueError):
        generate_private_key("dsa")
