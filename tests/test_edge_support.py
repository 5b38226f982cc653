"""The edge tests' helpers (tests/edge_support.py) do what the edge tests rely on."""

from __future__ import annotations

from cryptography import x509

from tests.edge_support import TestAuthority, get


def test_authority_issues_chains_the_ca_verifies() -> None:
    authority = TestAuthority()
    issued = authority.issue("a.example.test", "www.a.example.test")
    certs = x509.load_pem_x509_certificates(issued.chain_pem)
    assert len(certs) == 2
    san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example.test", "www.a.example.test"]
    certs[0].verify_directly_issued_by(authority.intermediate)
    authority.intermediate.verify_directly_issued_by(authority.root)


def test_request_helper_writes_host_only_when_given() -> None:
    assert get("/x", "h.test") == b"GET /x HTTP/1.1\r\nHost: h.test\r\n\r\n"
    assert get("/x", None, method="HEAD") == b"HEAD /x HTTP/1.1\r\n\r\n"
