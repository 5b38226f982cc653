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

    payload = bytes([3, 1]) + b"https://example.com/"
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


# Version 2: data, key ids, mint time -----------------------------------------------------


def test_version_2_round_trip_carries_everything() -> None:
    from linkcert.tracking import Minter, TrackingKeys

    keys = TrackingKeys([(4, KEY)])
    token = Minter(keys, DOMAIN, epoch=3).token(
        "https://example.com/x", b"msg=1;rcpt=2", link_id=77, minted_at=1_800_000_123
    )
    link = read_token(keys, DOMAIN, token)
    assert link == TrackedLinkV2(77, "https://example.com/x", b"msg=1;rcpt=2", 1_800_000_123, 3, 4)


def TrackedLinkV2(
    link_id: int | None, destination: str, data: bytes, minted_at: int, epoch: int, key_id: int
) -> object:
    from linkcert.tracking import TrackedLink

    return TrackedLink(link_id, destination, data, minted_at, epoch, key_id, 2)


def test_mint_is_pure_and_needs_no_link_id() -> None:
    from linkcert.tracking import mint

    url = mint(KEY, DOMAIN, "https://example.com/", b"abc", minted_at=5)
    assert url.startswith("https://links.example.com/c/")
    link = read_token(KEY, DOMAIN, url.rsplit("/", 1)[1])
    assert (link.link_id, link.data, link.minted_at, link.key_id) == (None, b"abc", 5, 0)
    open_url = mint(KEY, DOMAIN, "https://example.com/", kind="open", minted_at=5)
    assert open_url.startswith("https://links.example.com/o/")


def test_rotation_the_first_key_mints_every_listed_key_verifies() -> None:
    from linkcert.tracking import Minter, TrackingKeys

    old = tracking_key_from_secret("the key before the rotation, long enough")
    new = tracking_key_from_secret("the key after the rotation, long enough too")
    before = TrackingKeys([(1, old)])
    during = TrackingKeys([(2, new), (1, old)])
    after = TrackingKeys([(2, new)])
    old_token = Minter(before, DOMAIN).token("https://example.com/old")
    new_token = Minter(during, DOMAIN).token("https://example.com/new")
    assert read_token(during, DOMAIN, new_token).key_id == 2
    assert read_token(during, DOMAIN, old_token).destination == "https://example.com/old"
    assert read_token(after, DOMAIN, new_token).key_id == 2
    with pytest.raises(InvalidToken) as caught:
        read_token(after, DOMAIN, old_token)
    assert caught.value.reason == "key"
    # Version 1 tokens carry no key id: any listed key that signed one reads it.
    v1 = make_token(old, DOMAIN, 9, "https://example.com/v1")
    assert read_token(during, DOMAIN, v1).link_id == 9
    with pytest.raises(InvalidToken):
        read_token(after, DOMAIN, v1)


def test_a_key_id_signed_with_another_listed_key_is_refused() -> None:
    from linkcert.tracking import Minter, TrackingKeys

    a = tracking_key_from_secret("key a, long enough for the setting check")
    b = tracking_key_from_secret("key b, long enough for the setting check")
    token = Minter(TrackingKeys([(1, a)]), DOMAIN).token("https://example.com/")
    # Same id, different key: the id says which key to check, and that key did not sign it.
    with pytest.raises(InvalidToken) as caught:
        read_token(TrackingKeys([(1, b)]), DOMAIN, token)
    assert caught.value.reason == "signature"


def test_data_longer_than_255_bytes_or_not_bytes_is_refused() -> None:
    from linkcert.tracking import Minter

    minter = Minter(KEY, DOMAIN)
    minter.token("https://example.com/", b"x" * 255)
    with pytest.raises(ValueError, match="255"):
        minter.token("https://example.com/", b"x" * 256)
    with pytest.raises(ValueError, match="bytes"):
        minter.token("https://example.com/", "text")  # type: ignore[arg-type]


def test_key_lists_refuse_bad_ids_and_duplicates() -> None:
    from linkcert.tracking import TrackingKeys, parse_key_entries

    with pytest.raises(ValueError, match="twice"):
        TrackingKeys([(1, KEY), (1, KEY)])
    with pytest.raises(ValueError, match="0 to 255"):
        TrackingKeys([(256, KEY)])
    with pytest.raises(ValueError, match="at least one"):
        TrackingKeys([])
    assert parse_key_entries(["2:" + "n" * 32, " 1:" + "o" * 32]) == [(2, "n" * 32), (1, "o" * 32)]
    for bad, message in (
        (["x" * 40], "ID:SECRET"),
        (["300:" + "s" * 40], "ID:SECRET"),
        (["1:short"], "at least 32"),
        (["1:" + "a" * 32, "1:" + "b" * 32], "twice"),
    ):
        with pytest.raises(ValueError, match=message) as caught:
            parse_key_entries(bad)
        assert "short" not in str(caught.value) and "a" * 32 not in str(caught.value)
    assert "secret" not in repr(TrackingKeys([(1, KEY)])).lower().replace("keys", "")


@given(
    data=st.binary(max_size=255),
    destination=_destinations,
    link_id=st.none() | st.integers(0, MAX_LINK_ID),
    minted_at=st.integers(0, 2**63 - 1),
    epoch=st.integers(0, 2**63 - 1),
)
def test_any_data_round_trips(
    data: bytes, destination: str, link_id: int | None, minted_at: int, epoch: int
) -> None:
    from linkcert.tracking import Minter

    token = Minter(KEY, DOMAIN, epoch=epoch).token(
        destination, data, link_id=link_id, minted_at=minted_at
    )
    assert len(token) <= MAX_TOKEN_CHARS
    link = read_token(KEY, DOMAIN, token)
    assert (link.data, link.destination, link.link_id, link.minted_at, link.epoch) == (
        data,
        destination,
        link_id,
        minted_at,
        epoch,
    )


@given(data=st.binary(min_size=1, max_size=400))
def test_any_signed_version_2_payload_raises_only_invalid_token(data: bytes) -> None:
    import hashlib
    import hmac

    payload = bytes([2, 0]) + data
    tag = hmac.digest(KEY, DOMAIN.encode() + b"\x00" + payload, hashlib.sha256)[:16]
    token = base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()
    try:
        link = read_token(KEY, DOMAIN, token)
    except InvalidToken:
        return
    assert link.destination.isascii() and link.destination.isprintable()
    assert " " not in link.destination and len(link.data) <= 255


@given(url=st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=80))
def test_the_quick_destination_check_accepts_only_what_the_full_one_does(url: str) -> None:
    from linkcert.tracking.tokens import _check_destination_fully, _plain_bytes

    for candidate in (url, "https://" + url, "http://a" + url):
        if _plain_bytes(candidate) is not None:
            assert _check_destination_fully(candidate) == candidate
