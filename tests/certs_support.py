"""A throwaway certificate authority for tests: a root, an intermediate, and leaves on demand.

Stands in for the CA a brand buys its certificates from, so that uploads can be tested with
real chains, right and wrong.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


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


def _certificate(
    subject: str,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer: x509.Name,
    signer: Key,
    *,
    ca: bool,
    names: tuple[str, ...] = (),
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    server_auth: bool = True,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_auth else ExtendedKeyUsageOID.CODE_SIGNING
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(signer, hashes.SHA256())


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
    """A root and an intermediate, valid for a year around now."""

    root: x509.Certificate
    root_key: Key
    intermediate: x509.Certificate
    intermediate_key: Key

    @classmethod
    def create(cls, label: str = "Throwaway Brand CA") -> ThrowawayCA:
        start, end = now() - datetime.timedelta(days=1), now() + datetime.timedelta(days=365)
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _certificate(
            f"{label} Root",
            root_key.public_key(),
            _name(f"{label} Root"),
            root_key,
            ca=True,
            not_before=start,
            not_after=end,
        )
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        intermediate = _certificate(
            f"{label} Issuing",
            intermediate_key.public_key(),
            root.subject,
            root_key,
            ca=True,
            not_before=start,
            not_after=end,
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
        start = not_before or now() - datetime.timedelta(hours=1)
        certificate = _certificate(
            names[0] if names else "nameless",
            leaf_key.public_key(),
            self.intermediate.subject,
            self.intermediate_key,
            ca=False,
            names=names,
            not_before=start,
            not_after=start + datetime.timedelta(days=days),
            server_auth=server_auth,
        )
        return Leaf(certificate, leaf_key, [certificate, self.intermediate, self.root])


def self_signed(name: str) -> Leaf:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _certificate(
        name,
        key.public_key(),
        _name(name),
        key,
        ca=False,
        names=(name,),
        not_before=now() - datetime.timedelta(hours=1),
        not_after=now() + datetime.timedelta(days=30),
    )
    return Leaf(certificate, key, [certificate])
