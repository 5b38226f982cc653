"""Properties of linkcert.names.validate over generated input."""

from __future__ import annotations

import idna
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from linkcert.names import DomainName, DomainNameError, NamePolicy, validate

POLICIES = st.sampled_from(
    [
        NamePolicy(),
        NamePolicy(allow_test_domains=True, platform_domains=("platform-links.net",)),
    ]
)

# Any text at all, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=300)

# Text that looks like a domain name often enough to reach the accepting paths: labels drawn
# from letters, digits and hyphens with a sprinkling of characters that need mapping or that
# must be rejected, ending in a real or reserved top-level domain.
LABEL_CHARS = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyz0123456789-") + list("ABüÜßçñа日本ｌ_*.。 \u00ad\u200d")
)
LABELS = st.text(LABEL_CHARS, min_size=1, max_size=20)
TLDS = st.sampled_from(
    ["de", "com", "co.uk", "github.io", "рф", "test", "local", "example.com", "123", "xn--p1ai"]
)
NAME_LIKE = st.builds(
    lambda labels, tld, dot: ".".join([*labels, tld]) + dot,
    st.lists(LABELS, min_size=0, max_size=4),
    TLDS,
    st.sampled_from(["", ".", "。"]),
)

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much]
)


def check_valid_result(result: DomainName, policy: NamePolicy) -> None:
    """The invariants every accepted name satisfies."""
    assert result.ascii.isascii()
    assert result.ascii == result.ascii.lower()
    assert 0 < len(result.ascii) <= 253
    assert all(0 < len(label) <= 63 for label in result.ascii.split("."))
    assert result.ascii == result.registrable or result.ascii.endswith("." + result.registrable)
    # The canonical forms are fixed points.
    assert validate(result.ascii, policy) == result
    assert validate(result.unicode, policy) == result


def validate_or_none(name: str, policy: NamePolicy) -> DomainName | None:
    """validate(), with the only exception it may raise turned into None."""
    try:
        return validate(name, policy)
    except DomainNameError as err:
        assert err.code
        assert err.message
        err.message.encode("utf-8")
        return None


@SETTINGS
@given(ANY_TEXT, POLICIES)
def test_any_text_is_accepted_canonically_or_rejected(name: str, policy: NamePolicy) -> None:
    result = validate_or_none(name, policy)
    if result is not None:
        check_valid_result(result, policy)


@SETTINGS
@given(NAME_LIKE, POLICIES)
def test_name_like_text_is_accepted_canonically_or_rejected(name: str, policy: NamePolicy) -> None:
    result = validate_or_none(name, policy)
    if result is not None:
        check_valid_result(result, policy)


@SETTINGS
@given(NAME_LIKE)
def test_accepted_names_agree_with_the_idna_package(name: str) -> None:
    result = validate_or_none(name, NamePolicy(allow_test_domains=True))
    assume(result is not None)
    assert result is not None
    encoded = idna.encode(name.strip(), uts46=True, std3_rules=True).decode("ascii")
    assert encoded.removesuffix(".") == result.ascii


@SETTINGS
@given(NAME_LIKE)
def test_case_and_trailing_dot_do_not_matter(name: str) -> None:
    result = validate_or_none(name, NamePolicy())
    assume(result is not None)
    assert result is not None
    assert validate(f" {result.ascii.upper()}. ") == result


@SETTINGS
@given(NAME_LIKE, st.sampled_from(["https://{}/", "http://{}:8080/x?y=1", "{}/path", "a@{}"]))
def test_urls_around_an_accepted_name_suggest_it(name: str, template: str) -> None:
    result = validate_or_none(name, NamePolicy())
    assume(result is not None)
    assert result is not None
    with pytest.raises(DomainNameError) as info:
        validate(template.format(result.ascii))
    assert info.value.code == "looks_like_url"
    assert info.value.message.endswith(result.ascii)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=254, max_value=100_000), st.sampled_from(["a", "a.", "ü", "\u00ad"]))
def test_long_input_is_rejected(length: int, unit: str) -> None:
    with pytest.raises(DomainNameError):
        validate((unit * length)[:length] + "de")
