"""Certificates obtained elsewhere: checking an uploaded chain and key before the edge serves it.

An operator uploads what a brand's CA delivered: usually a PEM file with the certificate and
its intermediates, and a PEM private key. The edge will serve exactly this to every client that
clicks a link on the domain, so anything a browser would refuse is refused here first, with a
message that says what to change in the files.
"""

from __future__ import annotations

import datetime
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from sqlalchemy.orm import Session

from linkcert.acme.certs import ChainError, ChainInfo, parse_chain, verify_chain
from linkcert.keys import MasterKeys, private_key_to_pem
from linkcert.keystore import cert_key_context
from linkcert.renewal import renewal_time
from linkcert.store import Certificate, Domain

# Far above any real chain and key (a few kilobytes); two of them still fit in one request
# under the API's 64 KiB body limit.
MAX_UPLOAD_BYTES = 24 * 1024
MIN_RSA_BITS = 2048
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL)


class UploadError(ValueError):
    """The uploaded certificate or key cannot be served; the message says what to fix."""


@dataclass(frozen=True)
class CheckedUpload:
    """A chain and key that passed every check, in the form they are stored."""

    chain_pem: str  # the certificates alone, leaf first, re-encoded
    key_pem: bytes  # PKCS#8, unencrypted: it is encrypted under the master key when stored
    info: ChainInfo
    # False when it chains only to a root of the operator's private bundle, not a public one.
    publicly_trusted: bool = True


def check_upload(
    chain_pem: str | bytes,
    key_pem: str | bytes,
    domain: str,
    *,
    now: datetime.datetime | None = None,
    private_roots: Sequence[x509.Certificate] = (),
    public_roots: Sequence[x509.Certificate] | None = None,
) -> CheckedUpload:
    """Check that `chain_pem` and `key_pem` can be served for `domain`, or raise UploadError.

    The chain must lead to a root browsers trust: one of `public_roots` (the system's, by
    default) under the web PKI's rules, or else one of `private_roots` (the operator's
    `upload_ca_bundle`, for brands with a private CA), which marks it not publicly trusted.
    """
    certificates = _certificates(chain_pem)
    key = _private_key(key_pem)
    leaf = certificates[0]
    _check_key_belongs_to_leaf(certificates, key, domain)
    _check_usable_for_servers(leaf)
    if len(certificates) == 1 and leaf.issuer != leaf.subject:
        raise UploadError(
            "The file holds only the domain's certificate. Add the intermediate "
            "certificate(s) its CA delivered, after it, so that every browser can verify it."
        )
    if leaf.issuer == leaf.subject:
        raise UploadError(
            "The certificate is self-signed: browsers will not trust it. Upload one issued by "
            "a public certificate authority."
        )
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
    try:
        info = verify_chain(chain, key, domain, now=now)
    except ChainError as exc:
        raise UploadError(_sentence(str(exc))) from None
    when = now or datetime.datetime.now(datetime.UTC)
    roots = system_roots() if public_roots is None else tuple(public_roots)
    if _anchored(certificates, domain, roots, when, web_pki=True):
        trusted = True
    elif private_roots and _anchored(certificates, domain, private_roots, when, web_pki=False):
        trusted = False
    else:
        issuer = _common_name(certificates[-1].issuer)
        bundle = (
            " nor to a root of upload_ca_bundle"
            if private_roots
            else ". If the brand uses a private CA, an operator adds its root certificate to "
            "the upload_ca_bundle setting"
        )
        raise UploadError(
            f"The certificate does not lead to a publicly trusted root (the chain ends at "
            f"{issuer!r}){bundle}. Upload the full chain its CA delivered."
        )
    return CheckedUpload(chain.decode("ascii"), private_key_to_pem(key), info, trusted)


@cache
def system_roots() -> tuple[x509.Certificate, ...]:
    """The system's trusted roots (Debian's ca-certificates), read once."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return read_roots(Path(candidate).read_bytes())
    return ()


def read_roots(pem: bytes) -> tuple[x509.Certificate, ...]:
    """Every certificate in a PEM bundle; one that does not parse is left out."""
    found = []
    for block in _PEM_BLOCK.findall(pem):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old roots with odd serial numbers
            try:
                found.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return tuple(found)


def private_roots_from(path: Path | None) -> tuple[x509.Certificate, ...]:
    """The roots of the `upload_ca_bundle` file, or UploadError saying what is wrong."""
    if path is None:
        return ()
    try:
        roots = read_roots(path.read_bytes())
    except OSError as exc:
        raise UploadError(f"upload_ca_bundle: cannot read {path}: {exc.strerror}.") from None
    if not roots:
        raise UploadError(f"upload_ca_bundle: {path} holds no PEM certificate.")
    return roots


def _anchored(
    certificates: list[x509.Certificate],
    domain: str,
    roots: Sequence[x509.Certificate],
    now: datetime.datetime,
    *,
    web_pki: bool,
) -> bool:
    if not roots:
        return False
    builder = PolicyBuilder().store(Store(list(roots))).time(now)
    if not web_pki:
        # A private CA need not follow the public CAs' profile, only the basics of X.509.
        builder = builder.extension_policies(
            ca_policy=ExtensionPolicy.permit_all().require_present(
                x509.BasicConstraints, Criticality.AGNOSTIC, None
            ),
            ee_policy=ExtensionPolicy.permit_all().require_present(
                x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
            ),
        )
    verifier = builder.build_server_verifier(x509.DNSName(domain.strip().rstrip(".").lower()))
    try:
        verifier.verify(certificates[0], certificates[1:])
    except (VerificationError, ValueError):
        return False
    return True


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else name.rfc4514_string()


def store_upload(
    session: Session, keys: MasterKeys, domain: Domain, upload: CheckedUpload
) -> Certificate:
    """Add the checked certificate to `domain`, its key encrypted and bound to the domain."""
    info = upload.info
    certificate = Certificate(
        domain_id=domain.id,
        chain_pem=upload.chain_pem,
        key_encrypted=keys.encrypt(upload.key_pem, cert_key_context(domain.name)),
        serial=info.serial_hex,
        issuer=info.issuer_cn[:400],
        not_before=info.not_before,
        not_after=info.not_after,
        fingerprint_sha256=info.fingerprint_sha256,
        order_id=None,
        source="upload",
        private_ca=not upload.publicly_trusted,
        # No renewal information for a certificate from elsewhere: the lifetime rule.
        renew_at=renewal_time(info.not_before, info.not_after),
    )
    session.add(certificate)
    session.flush()
    return certificate


def _as_bytes(data: str | bytes, what: str) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_UPLOAD_BYTES:
        raise UploadError(f"The {what} is larger than {MAX_UPLOAD_BYTES // 1024} KiB.")
    if not raw.strip():
        raise UploadError(f"The {what} is empty.")
    return raw


def _certificates(chain_pem: str | bytes) -> list[x509.Certificate]:
    raw = _as_bytes(chain_pem, "certificate file")
    if b"PRIVATE KEY-----" in raw and b"CERTIFICATE-----" not in raw:
        raise UploadError(
            "The certificate file holds a private key. Upload the certificate (BEGIN "
            "CERTIFICATE) as the certificate, and the key as the key."
        )
    try:
        return parse_chain(raw)
    except ChainError:
        raise UploadError(
            "The certificate file is not in PEM form: it must hold blocks that start with "
            "-----BEGIN CERTIFICATE-----. Convert a DER or PKCS#12 file with openssl first."
        ) from None


def _private_key(key_pem: str | bytes) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    raw = _as_bytes(key_pem, "private key")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError:
        raise UploadError(
            "The private key is protected by a passphrase. Upload it without one "
            "(openssl pkey -in key.pem -out key-plain.pem)."
        ) from None
    except (ValueError, UnicodeError):
        raise UploadError(
            "The private key is not a PEM private key: it must start with -----BEGIN PRIVATE "
            "KEY----- (or BEGIN RSA / EC PRIVATE KEY)."
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise UploadError(
                f"The RSA key has {key.key_size} bits; browsers need at least {MIN_RSA_BITS}."
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise UploadError("Only RSA and ECDSA keys can be served; this key is of another kind.")


def _public_bytes(
    holder: x509.Certificate | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> bytes:
    return holder.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key_belongs_to_leaf(
    certificates: list[x509.Certificate],
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    domain: str,
) -> None:
    """The key must be the first certificate's, and that one must not be a CA."""
    mine = _public_bytes(key)
    if _public_bytes(certificates[0]) == mine and not _is_ca(certificates[0]):
        return
    for position, certificate in enumerate(certificates[1:], start=2):
        if _public_bytes(certificate) == mine:
            raise UploadError(
                f"The certificates are out of order: the one for this key is number {position} "
                "in the file. Put it first, then the certificate that signed it, and so on."
            )
    if _is_ca(certificates[0]):
        raise UploadError(
            "The first certificate is a CA certificate, not the certificate of "
            f"{domain}. Put the domain's own certificate first, then its intermediates."
        )
    raise UploadError(
        "The private key does not belong to the certificate. Upload the key that was made "
        "with the certificate request for this certificate."
    )


def _check_usable_for_servers(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # no restriction
    if ExtendedKeyUsageOID.SERVER_AUTH not in usage:
        raise UploadError(
            "The certificate is not for web servers (its extended key usage lacks TLS Web "
            "Server Authentication). Ask the CA for a TLS server certificate."
        )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return constraints.value.ca


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
