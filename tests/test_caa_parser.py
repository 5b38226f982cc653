"""The RFC 8659 issuer-value grammar: examples, malformed values, and properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkcert.dns.caa import CaaValueError, IssuerValue, parse_issuer_value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("letsencrypt.org", IssuerValue("letsencrypt.org")),
        ("LetsEncrypt.ORG", IssuerValue("letsencrypt.org")),
        ("  letsencrypt.org\t", IssuerValue("letsencrypt.org")),
        ("letsencrypt.org;", IssuerValue("letsencrypt.org")),
        ("letsencrypt.org ;  ", IssuerValue("letsencrypt.org")),
        (";", IssuerValue(None)),
        ("", IssuerValue(None)),
        (" ; ", IssuerValue(None)),
        ("a--b.example", IssuerValue("a--b.example")),
        (
            "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1",
            IssuerValue(
                "letsencrypt.org",
                (("accounturi", "https://acme-v02.api.letsencrypt.org/acme/acct/1"),),
            ),
        ),
        (
            "letsencrypt.org;validationmethods=dns-01,http-01 ; AccountURI = x",
            IssuerValue(
                "letsencrypt.org",
                (("validationmethods", "dns-01,http-01"), ("accounturi", "x")),
            ),
        ),
        ("letsencrypt.org; empty=", IssuerValue("letsencrypt.org", (("empty", ""),))),
        ("; policy=ev", IssuerValue(None, (("policy", "ev"),))),
    ],
)
def test_valid_values(value: str, expected: IssuerValue) -> None:
    assert parse_issuer_value(value) == expected
    assert parse_issuer_value(value.encode()) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("letsencrypt.org.", "not a domain name"),
        ("-letsencrypt.org", "not a domain name"),
        ("letsencrypt-.org", "not a domain name"),
        ("lets encrypt.org", "not a domain name"),
        ("letsencrypt..org", "not a domain name"),
        ("lets_encrypt.org", "not a domain name"),
        ("https://letsencrypt.org", "not a domain name"),
        ("letsencrypt.org; accounturi", "not a parameter"),
        ("letsencrypt.org; a=b;", "not a parameter"),
        ("letsencrypt.org; a=b c", "not a parameter"),
        ("letsencrypt.org; -a=b", "not a parameter"),
        ("letsencrypt.org; a=b; A=c", "appears twice"),
        ("letsencrypt.org\n", "not a domain name"),
    ],
)
def test_malformed_values(value: str, reason: str) -> None:
    with pytest.raises(CaaValueError, match=reason):
        parse_issuer_value(value)


def test_non_ascii_bytes_are_malformed() -> None:
    with pytest.raises(CaaValueError, match="outside ASCII"):
        parse_issuer_value(b"letsencrypt.org\xff")
    with pytest.raises(CaaValueError):
        parse_issuer_value("lëtsencrypt.org")


def test_parameter_lookup() -> None:
    value = parse_issuer_value("ca.example; accounturi=u; validationmethods=http-01")
    assert value.parameter("accounturi") == "u"
    assert value.parameter("validationmethods") == "http-01"
    assert value.parameter("other") is None


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_our_error(value: bytes) -> None:
    try:
        parsed = parse_issuer_value(value)
    except CaaValueError:
        return
    assert parsed.issuer is None or parsed.issuer == parsed.issuer.lower()


@given(st.text(max_size=300))
def test_any_text_parses_or_raises_our_error(value: str) -> None:
    with contextlib.suppress(CaaValueError):
        parse_issuer_value(value)


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_DOMAIN = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)
_PARAMETER_VALUE = st.text(
    alphabet=[chr(c) for c in range(0x21, 0x7F) if chr(c) != ";"], max_size=30
)
_PARAMETERS = st.dictionaries(_LABEL, _PARAMETER_VALUE, max_size=4)
_SPACE = st.sampled_from(["", " ", "\t", "  "])


@given(_DOMAIN, _PARAMETERS, _SPACE, _SPACE)
def test_well_formed_values_round_trip(
    issuer: str, parameters: dict[str, str], before: str, after: str
) -> None:
    text = before + issuer + after
    if parameters:
        text += ";" + ";".join(f"{before}{key}{after}={value}" for key, value in parameters.items())
    parsed = parse_issuer_value(text)
    assert parsed.issuer == issuer
    assert dict(parsed.parameters) == parameters


@given(st.binary(max_size=80))
def test_garbage_after_a_good_issuer_never_yields_another_issuer(suffix: bytes) -> None:
    try:
        parsed = parse_issuer_value(b"letsencrypt.org" + suffix)
    except CaaValueError:
        return
    # Either the suffix extended the domain name, or it was whitespace and parameters.
    assert parsed.issuer is not None and parsed.issuer.startswith("letsencrypt.org")
