"""Tracking tokens: the codec, its signature binding to the domain, and destination rules."""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkcert.tracking import (
    MAX_DESTINATION_CHARS,
    MAX_LINK_ID,
    MAX_TOKEN_CHARS,
    InvalidDestination,
    InvalidToken,
    check_destination,
    make_token,
    read_token,
    tracked_url,
    tracking_key_from_secret,
)

KEY = tracking_key_from_secret("an operator secret that is long enough")
DOMAIN = "links.example.com"


def test_round_trip() -> None:
    token = make_token(KEY, DOMAIN, 1234, "https://example.com/sale?x=1&y=%20#top")
    link = read_token(KEY, DOMAIN, token)
    assert (link.link_id, link.destination) == (1234, "https://example.com/sale?x=1&y=%20#top")


def test_token_is_compact_url_safe_text() -> None:
    destination = "https://example.com/p"
    token = make_token(KEY, DOMAIN, 300, destination)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    # Version byte, two varint bytes, the URL, a 16-byte tag.
    assert len(base64.urlsafe_b64decode(token + "==")) == 1 + 2 + len(destination) + 16


def test_domain_is_compared_without_case_or_trailing_dot() -> None:
    token = make_token(KEY, "Links.Example.COM", 1, "https://example.com/")
    assert read_token(KEY, "links.example.com.", token).link_id == 1


def test_token_for_one_domain_does_not_read_on_another() -> None:
    token = make_token(KEY, DOMAIN, 1, "https://example.com/")
    with pytest.raises(InvalidToken) as caught:
        read_token(KEY, "links.other.com", token)
    assert caught.value.reason == "signature"
    assert token not in str(caught.value)


def test_token_made_with_another_key_does_not_read() -> None:
    other = tracking_key_from_secret("another operator secret, also long enough")
    token = make_token(other, DOMAIN, 1, "https://example.com/")
    with pytest.raises(InvalidToken):
        read_token(KEY, DOMAIN, token)


def test_every_single_character_change_is_refused() -> None:
    token = make_token(KEY, DOMAIN, 99, "https://example.com/x")
    alphabet = "Aa0-_"
    for position in range(len(token)):
        for replacement in alphabet:
            if replacement == token[position]:
                continue
            altered = token[:position] + replacement + token[position + 1 :]
            with pytest.raises(InvalidToken):
                read_token(KEY, DOMAIN, altered)


def test_padding_and_non_canonical_spellings_are_refused() -> None:
    token = make_token(KEY, DOMAIN, 7, "https://example.com/")
    for variant in (token + "=", token + "==", token.replace("-", "+"), " " + token, token[:-1]):
        if variant == token:
            continue
        with pytest.raises(InvalidToken):
            read_token(KEY, DOMAIN, variant)


def test_unknown_version_is_refused_even_with_a_valid_tag() -> None:
    import hashlib
    import hmac

    payload = bytes([2, 1]) + b"https://example.com/"
    tag = hmac.digest(KEY, DOMAIN.encode() + b"\x00" + payload, hashlib.sha256)[:16]
    token = base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()
    with pytest.raises(InvalidToken) as caught:
        read_token(KEY, DOMAIN, token)
    assert caught.value.reason == "payload"


def test_tracked_urls() -> None:
    assert tracked_url(DOMAIN, "abc") == "https://links.example.com/c/abc"
    assert tracked_url(DOMAIN, "abc", "open") == "https://links.example.com/o/abc"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("//example.com/", "http:// or https://"),
        ("/relative", "http:// or https://"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https://example.com/a b", "space or control"),
        ("https://example.com/\r\nSet-Cookie: x", "space or control"),
        ("https://example.com/\x00", "space or control"),
        ("https://exämple.com/", "non-ASCII"),
        ("https://example.com/ü", "non-ASCII"),
        ("https://example.com\\@evil.test/", "backslash"),
        ("https:///path", "no host"),
        ("https://example.com:99999/", "cannot be parsed"),
        ("https://[::1/", "cannot be parsed"),
        ("https://example.com/" + "a" * MAX_DESTINATION_CHARS, "limit is 2,048"),
    ],
)
def test_destinations_that_are_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidDestination, match=message):
        check_destination(url)
    with pytest.raises(InvalidDestination):
        make_token(KEY, DOMAIN, 1, url)


def test_longest_destination_fits() -> None:
    url = "https://example.com/" + "a" * (MAX_DESTINATION_CHARS - len("https://example.com/"))
    token = make_token(KEY, DOMAIN, MAX_LINK_ID, url)
    assert len(token) <= MAX_TOKEN_CHARS
    assert read_token(KEY, DOMAIN, token).destination == url


def test_link_ids_out_of_range_are_refused() -> None:
    for link_id in (-1, MAX_LINK_ID + 1):
        with pytest.raises(ValueError, match="link_id"):
            make_token(KEY, DOMAIN, link_id, "https://example.com/")


def test_domain_must_be_ascii_to_make_a_token() -> None:
    with pytest.raises(ValueError, match="A-label"):
        make_token(KEY, "links.exämple.com", 1, "https://example.com/")


def test_short_secret_names_the_setting() -> None:
    with pytest.raises(ValueError, match="LINKCERT_TRACKING_KEY") as caught:
        tracking_key_from_secret("too short")
    assert "32" in str(caught.value)
    assert len(tracking_key_from_secret("s" * 32)) == 32


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="tracking_key_from_secret"):
        make_token(b"short", DOMAIN, 1, "https://example.com/")


# Properties -------------------------------------------------------------------------------

_host_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_hosts = st.lists(_host_label, min_size=1, max_size=4).map(".".join)
_url_chars = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]!$&'()*+,;=%{}|^`"
)
_paths = st.lists(_url_chars, max_size=200).map("".join)
_destinations = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    _hosts,
    st.sampled_from(["", ":8080", ":443"]),
    _paths,
)


@given(link_id=st.integers(0, MAX_LINK_ID), destination=_destinations, domain=_hosts)
def test_round_trip_for_any_id_and_valid_url(link_id: int, destination: str, domain: str) -> None:
    token = make_token(KEY, domain, link_id, destination)
    assert len(token) <= MAX_TOKEN_CHARS
    link = read_token(KEY, domain, token)
    assert (link.link_id, link.destination) == (link_id, destination)


@given(token=st.text(max_size=400), domain=st.text(max_size=60))
def test_reading_any_string_raises_only_invalid_token(token: str, domain: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(KEY, domain, token)


@given(data=st.binary(min_size=0, max_size=3000), domain=_hosts)
def test_reading_any_well_formed_base64_raises_only_invalid_token(data: bytes, domain: str) -> None:
    token = base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        read_token(KEY, domain, token)


@given(
    destination=_destinations,
    position=st.integers(min_value=0),
    replacement=st.sampled_from("AQgw09-_"),
)
def test_any_altered_character_is_refused(
    destination: str, position: int, replacement: str
) -> None:
    token = make_token(KEY, DOMAIN, 5, destination)
    position %= len(token)
    altered = token[:position] + replacement + token[position + 1 :]
    if altered != token:
        with pytest.raises(InvalidToken):
            read_token(KEY, DOMAIN, altered)


# The shortest token read_token looks into: shorter ones are refused for their length alone.
MIN_CHARS = 35


def _is_canonical_base64url(text: str) -> bool:
    """The slow, obvious definition: decoding and encoding again gives the same text back."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == text


@given(
    token=st.text(
        alphabet="ABCDQgw048AEIMUYcksoz-_+/= .\n", min_size=MIN_CHARS, max_size=MIN_CHARS + 9
    )
)
def test_only_canonical_spellings_get_past_the_format_check(token: str) -> None:
    with pytest.raises(InvalidToken) as caught:
        read_token(KEY, DOMAIN, token)
    # A canonical spelling is refused for its signature (it was not minted), anything else as
    # malformed.
    assert (caught.value.reason != "malformed") == _is_canonical_base64url(token)


@given(key=st.binary(min_size=0, max_size=200), message=st.binary(max_size=3000))
def test_the_tag_is_hmac_sha256(key: bytes, message: bytes) -> None:
    import hashlib
    import hmac

    from linkcert.tracking.tokens import _HmacSha256

    assert _HmacSha256(key).digest(message) == hmac.digest(key, message, hashlib.sha256)
