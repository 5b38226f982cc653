"""The ACME account key: made once, stored (encrypted by the caller), reused for every order.

The key is handed around as this wrapper so that it never ends up in a log line or an error
message by accident: its repr shows the key type and the public thumbprint only.
"""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.b64 import b64encode
from josepy.jwa import ES256, ES384, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA


class AccountKeyKind(StrEnum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


_CURVES: dict[AccountKeyKind, ec.EllipticCurve] = {
    AccountKeyKind.EC_P256: ec.SECP256R1(),
    AccountKeyKind.EC_P384: ec.SECP384R1(),
}
_RSA_BITS = {
    AccountKeyKind.RSA_2048: 2048,
    AccountKeyKind.RSA_3072: 3072,
    AccountKeyKind.RSA_4096: 4096,
}

AccountPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class AccountKey:
    """A private key an ACME account signs its requests with."""

    def __init__(self, private_key: AccountPrivateKey) -> None:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            curve = private_key.curve.name
            if curve == "secp256r1":
                self._algorithm, self._kind = ES256, "EC P-256"
            elif curve == "secp384r1":
                self._algorithm, self._kind = ES384, "EC P-384"
            else:
                raise ValueError(f"ACME CAs accept EC account keys on P-256 or P-384, not {curve}")
            self._jwk: JWK = JWKEC(key=private_key)
        elif isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < 2048:
                raise ValueError("an RSA account key needs at least 2048 bits")
            self._algorithm, self._kind = RS256, f"RSA {private_key.key_size}"
            self._jwk = JWKRSA(key=private_key)
        else:
            raise TypeError("an account key is an EC (P-256, P-384) or RSA private key")
        self._private_key = private_key

    @classmethod
    def generate(cls, kind: AccountKeyKind | str = AccountKeyKind.EC_P256) -> AccountKey:
        """A new random key; ECDSA P-256 unless told otherwise."""
        kind = AccountKeyKind(kind)
        if kind in _CURVES:
            return cls(ec.generate_private_key(_CURVES[kind]))
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[kind]))

    @classmethod
    def from_pem(cls, pem: bytes, password: bytes | None = None) -> AccountKey:
        """Load a key saved by `to_pem` (or any PEM private key of a supported type)."""
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as error:
            # The library's message may quote the input; say only what failed.
            raise ValueError("the account key is not a readable PEM private key") from error
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise TypeError("an account key is an EC (P-256, P-384) or RSA private key")
        return cls(key)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM: the caller encrypts it before storing it."""
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def jwk(self) -> JWK:
        return self._jwk

    @property
    def public_jwk(self) -> JWK:
        return self._jwk.public_key()

    @property
    def algorithm(self) -> JWASignature:
        return self._algorithm

    @property
    def kind(self) -> str:
        return self._kind

    def thumbprint(self) -> str:
        """RFC 7638 thumbprint, base64url: the part after the dot of every key authorization."""
        return b64encode(self._jwk.thumbprint()).decode("ascii")

    def __repr__(self) -> str:
        return f"AccountKey({self._kind}, thumbprint={self.thumbprint()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccountKey) and self.thumbprint() == other.thumbprint()

    def __hash__(self) -> int:
        return hash(self.thumbprint())
