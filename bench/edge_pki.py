"""A throwaway certificate authority and one certificate per benchmark name.

Shaped like Let's Encrypt's ECDSA issuance: a P-384 root, a P-384 intermediate, and P-256 leaf
keys, each leaf naming one domain. Both servers in the benchmark load the very same files, so
neither gets smaller certificates or a cheaper signature than the other.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAME_SUFFIX = "edge-bench.test"  # .test is reserved for testing (RFC 6761): never a real host
_DAY = datetime.timedelta(days=1)
# Long enough that neither server thinks a certificate is due for renewal during the run.
LEAF_LIFETIME = 90 * _DAY


def bench_names(count: int) -> list[str]:
    """`n00000.edge-bench.test`, ...: distinct names, all the same length."""
    return [f"n{i:05d}.{NAME_SUFFIX}" for i in range(count)]


@dataclass(frozen=True)
class BenchPki:
    """Where the files are: `root.pem`, and `<name>.crt` (leaf + intermediate), `<name>.key`."""

    directory: Path
    names: tuple[str, ...]

    @property
    def root_pem(self) -> Path:
        return self.directory / "root.pem"

    def chain_path(self, name: str) -> Path:
        return self.directory / "leaves" / f"{name}.crt"

    def key_path(self, name: str) -> Path:
        return self.directory / "leaves" / f"{name}.key"


def _ca_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    path_length: int,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _DAY)
        .not_valid_after(now + 365 * _DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA384())
    )


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def make_pki(directory: Path, names: list[str]) -> BenchPki:
    """Create the CA and one leaf per name under `directory`; a few seconds per 10,000."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca_certificate("edge bench root", root_key, None, root_key, 1)
    intermediate_key = ec.generate_private_key(ec.SECP384R1())
    intermediate = _ca_certificate(
        "edge bench intermediate", intermediate_key, root.subject, root_key, 0
    )
    intermediate_pem = intermediate.public_bytes(serialization.Encoding.PEM)
    (directory / "leaves").mkdir(parents=True, exist_ok=True)
    pki = BenchPki(directory, tuple(names))
    pki.root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))

    now = datetime.datetime.now(datetime.UTC)
    usage = _leaf_usage()
    server_auth = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(
        intermediate_key.public_key()
    )
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))  # like Let's Encrypt's current leaves: SAN only
            .issuer_name(intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now - _DAY + LEAF_LIFETIME)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(server_auth, critical=False)
            .add_extension(authority_key_id, critical=False)
            .sign(intermediate_key, hashes.SHA384())
        )
        pki.chain_path(name).write_bytes(
            leaf.public_bytes(serialization.Encoding.PEM) + intermediate_pem
        )
        pki.key_path(name).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return pki
