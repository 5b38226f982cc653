"""A throwaway certificate authority for tests: a root, an intermediate, and leaves on demand.

Stands in for the CA a brand buys its certificates from, so that uploads can be tested with
real chains, right and wrong. The certificates themselves are made by linkcert.testbed.pki,
the one certificate builder of the tests, the benchmarks and Pebble's listener.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from linkcert.testbed.pki import ca_certificate, leaf_certificate, self_signed_leaf

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_CA_LIFETIME = datetime.timedelta(days=366)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: Key, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@dataclass
class Leaf:
    certificate: x509.Certificate
    key: Key
    chain: list[x509.Certificate]  # leaf first, then intermediate, then root

    @property
    def chain_pem(self) -> bytes:
        return b"".join(pem(c) for c in self.chain)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        """The root it chains to, for `check_upload(private_roots=...)`: a private CA's."""
        return (self.chain[-1],)


@dataclass
class ThrowawayCA:
    """A root and an intermediate, valid for a year from yesterday."""

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, label: str = "Throwaway Brand CA") -> ThrowawayCA:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = ca_certificate(f"{label} Root", root_key, path_length=None, lifetime=_CA_LIFETIME)
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        intermediate = ca_certificate(
            f"{label} Issuing",
            intermediate_key,
            issuer=root,
            issuer_key=root_key,
            path_length=0,
            lifetime=_CA_LIFETIME,
        )
        return cls(root, root_key, intermediate, intermediate_key)

    def issue(
        self,
        *names: str,
        key: Key | None = None,
        days: float = 90,
        not_before: datetime.datetime | None = None,
        server_auth: bool = True,
    ) -> Leaf:
        leaf_key = key or ec.generate_private_key(ec.SECP256R1())
        certificate = leaf_certificate(
            leaf_key,
            names,
            self.intermediate,
            self.intermediate_key,
            lifetime=datetime.timedelta(days=days),
            subject=names[0] if names else "nameless",
            not_before=not_before or now() - datetime.timedelta(hours=1),
            server_auth=server_auth,
        )
        return Leaf(certificate, leaf_key, [certificate, self.intermediate, self.root])


def self_signed(name: str) -> Leaf:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = self_signed_leaf(key, (name,), lifetime=datetime.timedelta(days=30))
    return Leaf(certificate, key, [certificate])
