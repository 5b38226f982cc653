"""Certificate requests for one name, and checks of the chain a CA returns.

`verify_chain` is what stands between a CA's answer and the edge serving it: a chain whose leaf
does not match our key, or does not cover the name, would break every HTTPS click on that
domain, so it is refused here with the reason.
"""

from __future__ import annotations

import base64
import datetime
import itertools
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# The key types ACME CAs issue for.
CertificatePrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PrivateKeyInput = CertificatePrivateKey | bytes | str

# CN is limited to 64 characters; longer names go in the SAN only (CAs require the SAN anyway).
_MAX_COMMON_NAME = 64
DEFAULT_CLOCK_SKEW = datetime.timedelta(minutes=5)


class ChainError(ValueError):
    """The chain is not one the edge can serve for this name and key; the message says why."""


@dataclass(frozen=True)
class ChainInfo:
    """Facts about a verified chain, taken from its leaf."""

    serial_hex: str
    issuer_cn: str
    names: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    fingerprint_sha256: str
    chain_length: int

    @property
    def lifetime(self) -> datetime.timedelta:
        return self.not_after - self.not_before


def load_private_key(key: PrivateKeyInput) -> CertificatePrivateKey:
    """Accept a key object or its unencrypted PEM; EC or RSA only."""
    if isinstance(key, str | bytes):
        data = key.encode("ascii") if isinstance(key, str) else key
        try:
            loaded = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise ValueError("the private key is not an unencrypted PEM private key") from None
    else:
        loaded = key
    if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError("certificate keys must be EC or RSA private keys")
    return loaded


def make_csr(private_key: PrivateKeyInput, domain: str) -> bytes:
    """A PEM certificate signing request for `domain` (ASCII / A-label form), signed by the key."""
    key = load_private_key(private_key)
    name = domain.strip().rstrip(".").lower()
    if not name or not name.isascii():
        raise ValueError(f"{domain!r} is not a domain name in ASCII (A-label) form")
    subject = (
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        if len(name) <= _MAX_COMMON_NAME
        else x509.Name([])
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def parse_chain(chain_pem: str | bytes) -> list[x509.Certificate]:
    """The certificates of a PEM chain, in order; raises ChainError when there are none."""
    data = chain_pem.encode("ascii") if isinstance(chain_pem, str) else chain_pem
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ChainError("the chain is not a list of PEM certificates") from None
    if not certificates:
        raise ChainError("the chain holds no certificate")
    return certificates


def verify_chain(
    chain_pem: str | bytes,
    private_key: PrivateKeyInput,
    domain: str,
    trusted_roots_pem: str | bytes | None = None,
    *,
    now: datetime.datetime | None = None,
    clock_skew: datetime.timedelta = DEFAULT_CLOCK_SKEW,
) -> ChainInfo:
    """Check that the chain can be served for `domain` with `private_key`, and describe it.

    The leaf must carry the key's public key and cover the name in its SAN; each certificate
    must be signed by the next one, which must be a CA; every certificate must be valid now
    (allowing `clock_skew`). With `trusted_roots_pem`, the last certificate must be one of those
    roots or be signed by one. Raises ChainError naming the first problem found.
    """
    certificates = parse_chain(chain_pem)
    key = load_private_key(private_key)
    leaf = certificates[0]
    name = domain.strip().rstrip(".").lower()
    now = now or datetime.datetime.now(datetime.UTC)

    if _public_key_bytes(leaf) != _public_key_bytes(key):
        raise ChainError("the certificate's public key does not match the private key")
    names = _dns_names(leaf)
    if not any(_name_matches(pattern, name) for pattern in names):
        covered = ", ".join(names) or "no DNS name"
        raise ChainError(f"the certificate does not cover {name} (it covers {covered})")

    for position, certificate in enumerate(certificates):
        _check_dates(certificate, position, now, clock_skew)
    for position, (child, issuer) in enumerate(itertools.pairwise(certificates)):
        _check_issued_by(child, issuer, f"certificate {position + 1} of the chain")

    if trusted_roots_pem is not None:
        _check_anchored(certificates[-1], parse_chain(trusted_roots_pem))

    return ChainInfo(
        serial_hex=serial_hex(leaf),
        issuer_cn=_common_name(leaf.issuer),
        names=tuple(names),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        chain_length=len(certificates),
    )


def serial_hex(certificate: x509.Certificate) -> str:
    """The serial as lowercase hex without `0x`, as CAs' status pages and ARI write it."""
    text = format(certificate.serial_number, "x")
    return text if len(text) % 2 == 0 else "0" + text


def ari_certificate_id(certificate: x509.Certificate | str | bytes) -> str:
    """The RFC 9773 (ARI) identifier of a certificate: what `renewalInfo/<id>` and an order's
    `replaces` field name it by (base64url of the issuer key identifier, a dot, base64url of
    the DER serial)."""
    leaf = parse_chain(certificate)[0] if isinstance(certificate, str | bytes) else certificate
    try:
        identifier = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        raise ValueError("the certificate has no authority key identifier") from None
    key_id = identifier.value.key_identifier
    if key_id is None:
        raise ValueError("the certificate's authority key identifier has no key identifier")
    serial = leaf.serial_number
    # DER INTEGER content: big-endian two's complement, so one more bit for the sign.
    serial_bytes = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{_b64url(key_id)}.{_b64url(serial_bytes)}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _public_key_bytes(holder: x509.Certificate | CertificatePrivateKey) -> bytes:
    public_key = holder.public_key()
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in extension.value.get_values_for_type(x509.DNSName)]


def _name_matches(pattern: str, name: str) -> bool:
    if pattern == name:
        return True
    # A wildcard stands for exactly one leftmost label.
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return False


def _check_dates(
    certificate: x509.Certificate,
    position: int,
    now: datetime.datetime,
    skew: datetime.timedelta,
) -> None:
    which = "the certificate" if position == 0 else f"certificate {position + 1} of the chain"
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if start >= end:
        raise ChainError(f"{which} has a validity period that ends before it starts")
    if now + skew < start:
        raise ChainError(f"{which} is not valid before {start.isoformat()}")
    if now - skew > end:
        raise ChainError(f"{which} expired on {end.isoformat()}")


def _check_issued_by(child: x509.Certificate, issuer: x509.Certificate, which: str) -> None:
    if not _is_ca(issuer):
        raise ChainError(f"{which} is followed by a certificate that is not a CA")
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise ChainError(f"{which} is not signed by the certificate after it") from None


def _check_anchored(last: x509.Certificate, roots: list[x509.Certificate]) -> None:
    if any(last == root for root in roots):
        return
    for root in roots:
        try:
            _check_issued_by(last, root, "the chain")
        except ChainError:
            continue
        return
    raise ChainError(
        f"the chain does not lead to a trusted root (it ends at {_common_name(last.issuer)!r})"
    )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _common_name(name: x509.Name) -> str:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes:
        return name.rfc4514_string()
    value = attributes[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
