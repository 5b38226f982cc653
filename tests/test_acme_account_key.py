"""Account keys: generated, saved as PEM, loaded back, and never shown."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from linkcert.acme import AccountKey, AccountKeyKind


def test_default_key_is_ecdsa_p256_signing_es256() -> None:
    key = AccountKey.generate()
    assert key.kind == "EC P-256"
    assert key.algorithm.name == "ES256"
    assert key.public_jwk.to_partial_json()["crv"] == "P-256"


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [(AccountKeyKind.EC_P384, "ES384"), ("rsa-2048", "RS256")],
)
def test_other_kinds(kind: AccountKeyKind | str, algorithm: str) -> None:
    assert AccountKey.generate(kind).algorithm.name == algorithm


def test_pem_round_trip_keeps_the_key() -> None:
    key = AccountKey.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = AccountKey.from_pem(pem)
    assert again == key
    assert again.thumbprint() == key.thumbprint()
    assert AccountKey.generate() != key


def test_encrypted_pem_loads_with_its_password() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    assert AccountKey.from_pem(pem, password=b"secret") == AccountKey(private)


def test_repr_and_errors_show_no_key_material() -> None:
    key = AccountKey.generate()
    text = repr(key)
    assert key.thumbprint() in text
    assert "PRIVATE" not in text
    assert key.public_jwk.to_partial_json()["x"] not in text
    with pytest.raises(ValueError) as unreadable:
        AccountKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    assert "c2VjcmV0" not in str(unreadable.value)


def test_thumbprint_is_base64url_sha256() -> None:
    thumbprint = AccountKey.generate().thumbprint()
    assert len(thumbprint) == 43
    assert "=" not in thumbprint and "+" not in thumbprint and "/" not in thumbprint


def test_keys_cas_do_not_accept_are_refused() -> None:
    with pytest.raises(ValueError, match="2048"):
        AccountKey(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    with pytest.raises(ValueError, match="P-256"):
        AccountKey(ec.generate_private_key(ec.SECP521R1()))
    ed = ed25519.Ed25519PrivateKey.generate()
    pem = ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(TypeError):
        AccountKey.from_pem(pem)
