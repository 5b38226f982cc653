"""A throwaway certificate authority: CA and server certificates made on the spot.

For the tests, the benchmarks and Pebble's own listener, which all need real chains that a TLS
client can verify but no certificate anyone outside a single run should trust. Keys are
elliptic-curve; the caller picks the curve, the hash and the lifetimes, so a benchmark can be
shaped like a public CA's issuance while a test stays quick.

Certificates carry key identifiers (SKI on CAs, AKI on everything a CA signed): OpenSSL's strict
verification, the default of newer Python `ssl` contexts, refuses chains without them.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ONE_DAY = datetime.timedelta(days=1)
# Every certificate starts this far back, so that a client whose clock is behind accepts it.
_BACKDATE = ONE_DAY
# The hashes ECDSA certificates are signed with in practice.
SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
# A server's own key may be RSA (what some brands buy); CAs made here are elliptic-curve.
ServerKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_SHA256 = hashes.SHA256()


def ca_key_usage() -> x509.KeyUsage:
    """What a CA's key may do: sign certificates and CRLs, and sign data as public CAs' keys may."""
    return _key_usage(certificate_signing=True)


def leaf_key_usage() -> x509.KeyUsage:
    """What a server's elliptic-curve key may do: sign its side of the TLS handshake."""
    return _key_usage(certificate_signing=False)


def ca_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None = None,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    path_length: int | None,
    lifetime: datetime.timedelta,
    hash_algorithm: SignatureHash = _SHA256,
    serial: int | None = None,
) -> x509.Certificate:
    """A CA certificate named `subject` (its common name) for `key`.

    Without `issuer` it is a self-signed root; with it, an intermediate signed by `issuer_key`.
    `path_length` is how many CAs may stand below it (0: it signs only leaves). It is valid
    from a day ago, for `lifetime` in all.
    """
    if (issuer is None) != (issuer_key is None):
        raise ValueError("give both issuer and issuer_key, or neither for a self-signed root")
    name = _common_name(subject)
    public_key = key.public_key()
    issuer_name = issuer.subject if issuer is not None else name
    builder = (
        _builder(name, public_key, issuer_name, lifetime=lifetime, serial=serial)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_key is None:
        return builder.sign(key, hash_algorithm)
    builder = builder.add_extension(_authority_key_id(issuer_key), critical=False)
    return builder.sign(issuer_key, hash_algorithm)


def leaf_certificate(
    key: ServerKey,
    names: Sequence[str],
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    lifetime: datetime.timedelta,
    addresses: Sequence[str] = (),
    subject: str | None = None,
    hash_algorithm: SignatureHash = _SHA256,
    serial: int | None = None,
    not_before: datetime.datetime | None = None,
    server_auth: bool = True,
) -> x509.Certificate:
    """A TLS server certificate for `key`, valid for the DNS `names` and IP `addresses`.

    `subject` is an optional common name; without one the subject is empty, as on Let's
    Encrypt's current certificates, and the name list is then marked critical, as RFC 5280
    requires of a certificate whose names are only there. Valid from a day ago (or from
    `not_before`), for `lifetime` in all. Without `server_auth` its extended key usage is code
    signing, which no TLS server certificate may be.
    """
    general_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    general_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    subject_name = _common_name(subject) if subject is not None else x509.Name([])
    builder = _builder(
        subject_name,
        key.public_key(),
        issuer.subject,
        lifetime=lifetime,
        serial=serial,
        not_before=not_before,
    )
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server_auth else ExtendedKeyUsageOID.CODE_SIGNING
    return (
        builder.add_extension(x509.SubjectAlternativeName(general_names), critical=subject is None)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(_authority_key_id(issuer_key), critical=False)
        .sign(issuer_key, hash_algorithm)
    )


def self_signed_leaf(
    key: ec.EllipticCurvePrivateKey, names: Sequence[str], *, lifetime: datetime.timedelta
) -> x509.Certificate:
    """A server certificate for `names` signed by its own key: what no client should trust."""
    name = _common_name(names[0])
    return (
        _builder(name, key.public_key(), name, lifetime=lifetime, serial=None)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(leaf_key_usage(), critical=True)
        .sign(key, _SHA256)
    )


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """`key` as unencrypted PKCS#8 PEM, the form TLS servers load."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _builder(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    issuer: x509.Name,
    *,
    lifetime: datetime.timedelta,
    serial: int | None,
    not_before: datetime.datetime | None = None,
) -> x509.CertificateBuilder:
    if not_before is None:
        not_before = datetime.datetime.now(datetime.UTC) - _BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
    )


def _common_name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _authority_key_id(issuer_key: ec.EllipticCurvePrivateKey) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


def _key_usage(*, certificate_signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certificate_signing,
        crl_sign=certificate_signing,
        encipher_only=False,
        decipher_only=False,
    )
