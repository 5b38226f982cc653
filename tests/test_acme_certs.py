"""CSRs for one name and the checks a CA's chain must pass before the edge serves it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from linkcert.acme.certs import (
    ChainError,
    ari_certificate_id,
    make_csr,
    parse_chain,
    serial_hex,
    verify_chain,
)

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
DOMAIN = "links.example.com"


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    names: tuple[str, ...] = (),
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 30 * DAY,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


@dataclass
class Hierarchy:
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    def leaf(
        self,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        *names: str,
        **dates: datetime.datetime,
    ) -> x509.Certificate:
        return certificate(
            "leaf",
            key,
            self.intermediate,
            self.intermediate_key,
            ca=False,
            names=names or (DOMAIN,),
            **dates,
        )


def hierarchy(intermediate_is_ca: bool = True) -> Hierarchy:
    root_key, intermediate_key = ec_key(), ec_key()
    root = certificate("Test Root", root_key, None, root_key, ca=True)
    intermediate = certificate(
        "Test Intermediate", intermediate_key, root, root_key, ca=intermediate_is_ca
    )
    return Hierarchy(root, root_key, intermediate, intermediate_key)


@pytest.fixture(scope="module")
def ca() -> Hierarchy:
    return hierarchy()


def test_csr_names_the_domain_and_is_signed_by_the_key() -> None:
    key = ec_key()
    csr = x509.load_pem_x509_csr(make_csr(key, "Links.Example.com."))
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DOMAIN
    assert csr.public_key() == key.public_key()


def test_csr_accepts_a_pem_key_and_rsa() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    csr = x509.load_pem_x509_csr(make_csr(key_pem, DOMAIN))
    assert csr.public_key() == key.public_key()


def test_csr_for_a_name_too_long_for_a_common_name_has_san_only() -> None:
    name = "a" * 60 + ".example.com"
    csr = x509.load_pem_x509_csr(make_csr(ec_key(), name))
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [name]


def test_csr_refuses_unicode_names_and_unsupported_keys() -> None:
    with pytest.raises(ValueError, match="A-label"):
        make_csr(ec_key(), "bücher.example")
    with pytest.raises(ValueError, match="PEM"):
        make_csr(b"not a key", DOMAIN)


def test_good_chain_is_described(ca: Hierarchy) -> None:
    key = ec_key()
    leaf = ca.leaf(key)
    info = verify_chain(pem(leaf, ca.intermediate), key, DOMAIN, pem(ca.root))
    assert info.names == (DOMAIN,)
    assert info.issuer_cn == "Test Intermediate"
    assert info.serial_hex == serial_hex(leaf)
    assert int(info.serial_hex, 16) == leaf.serial_number
    assert len(info.serial_hex) % 2 == 0
    assert info.fingerprint_sha256 == leaf.fingerprint(hashes.SHA256()).hex()
    assert info.chain_length == 2
    assert info.lifetime == leaf.not_valid_after_utc - leaf.not_valid_before_utc


def test_chain_ending_with_the_trusted_root_itself_verifies(ca: Hierarchy) -> None:
    key = ec_key()
    chain = pem(ca.leaf(key), ca.intermediate, ca.root)
    assert verify_chain(chain, key, DOMAIN, pem(ca.root)).chain_length == 3


def test_chain_is_checked_without_roots_too(ca: Hierarchy) -> None:
    key = ec_key()
    verify_chain(pem(ca.leaf(key), ca.intermediate).encode(), key, DOMAIN)


def test_another_key_is_refused(ca: Hierarchy) -> None:
    with pytest.raises(ChainError, match="public key does not match"):
        verify_chain(pem(ca.leaf(ec_key()), ca.intermediate), ec_key(), DOMAIN)


def test_another_name_is_refused(ca: Hierarchy) -> None:
    key = ec_key()
    with pytest.raises(ChainError, match=r"does not cover other\.example\.com"):
        verify_chain(pem(ca.leaf(key), ca.intermediate), key, "other.example.com")


def test_wildcard_covers_one_label_only(ca: Hierarchy) -> None:
    key = ec_key()
    chain = pem(ca.leaf(key, "*.example.com"), ca.intermediate)
    verify_chain(chain, key, DOMAIN)
    for outside in ("example.com", "a.links.example.com"):
        with pytest.raises(ChainError, match="does not cover"):
            verify_chain(chain, key, outside)


def test_chain_out_of_order_or_from_another_ca_is_refused(ca: Hierarchy) -> None:
    key = ec_key()
    stranger = hierarchy()
    with pytest.raises(ChainError, match="not signed by the certificate after it"):
        verify_chain(pem(ca.leaf(key), stranger.intermediate), key, DOMAIN)


def test_issuer_that_is_not_a_ca_is_refused() -> None:
    weak = hierarchy(intermediate_is_ca=False)
    key = ec_key()
    with pytest.raises(ChainError, match="not a CA"):
        verify_chain(pem(weak.leaf(key), weak.intermediate), key, DOMAIN)


def test_untrusted_root_is_refused(ca: Hierarchy) -> None:
    key = ec_key()
    with pytest.raises(ChainError, match="trusted root"):
        verify_chain(pem(ca.leaf(key), ca.intermediate), key, DOMAIN, pem(hierarchy().root))


def test_expired_and_future_certificates_are_refused(ca: Hierarchy) -> None:
    key = ec_key()
    expired = ca.leaf(key, not_before=NOW - 10 * DAY, not_after=NOW - DAY)
    with pytest.raises(ChainError, match="expired"):
        verify_chain(pem(expired, ca.intermediate), key, DOMAIN)
    future = ca.leaf(key, not_before=NOW + DAY, not_after=NOW + 10 * DAY)
    with pytest.raises(ChainError, match="not valid before"):
        verify_chain(pem(future, ca.intermediate), key, DOMAIN)
    # A few minutes of clock difference with the CA is tolerated.
    fresh = ca.leaf(key, not_before=NOW + datetime.timedelta(minutes=2))
    verify_chain(pem(fresh, ca.intermediate), key, DOMAIN)


def test_text_without_certificates_is_refused() -> None:
    with pytest.raises(ChainError):
        parse_chain("no certificate here")
    with pytest.raises(ChainError):
        verify_chain("", ec_key(), DOMAIN)


def test_ari_identifier_follows_the_rfc_example() -> None:
    # The worked example of RFC 9773 (ARI): this key identifier and serial.
    key = ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    key_identifier = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x87654321)
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(x509.AuthorityKeyIdentifier(key_identifier, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )
    assert ari_certificate_id(leaf) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert ari_certificate_id(pem(leaf)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_ari_identifier_needs_an_authority_key_identifier(ca: Hierarchy) -> None:
    with pytest.raises(ValueError, match="authority key identifier"):
        ari_certificate_id(ca.leaf(ec_key()))
