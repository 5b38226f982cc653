"""Examples for every rule of linkcert.names, accepted and rejected."""

from __future__ import annotations

import re

import pytest

from linkcert.names import (
    DomainName,
    DomainNameError,
    ErrorCode,
    NamePolicy,
    is_within,
    normalize,
    registrable_domain,
    validate,
)

TEST_POLICY = NamePolicy(allow_test_domains=True)
PLATFORM_POLICY = NamePolicy(platform_domains=("Platform-Links.NET.", "plattform-bücher.de"))


def rejection(name: str, policy: NamePolicy | None = None) -> DomainNameError:
    with pytest.raises(DomainNameError) as info:
        validate(name, policy)
    return info.value


# Labels for the length limits: the name below is exactly 253 octets long.
LONGEST_LABEL = "a" * 63
LONGEST_NAME = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 58, "de"])
# 21 distinct CJK characters: 21 characters as a U-label, but over 63 octets as an A-label.
WIDE_ULABEL = "".join(chr(0x4E00 + 997 * i) for i in range(21))


def test_length_fixtures_are_what_they_claim() -> None:
    assert len(LONGEST_NAME) == 253
    assert len(WIDE_ULABEL) <= 63
    assert len("xn--" + WIDE_ULABEL.encode("punycode").decode("ascii")) > 63


# ---------------------------------------------------------------------------------------------
# Accepted names and their normal forms


@pytest.mark.parametrize(
    ("raw", "ascii", "unicode"),
    [
        ("links.shop.de", "links.shop.de", "links.shop.de"),
        ("  LINKS.Shop.DE.  ", "links.shop.de", "links.shop.de"),
        ("\tlinks.shop.de\n", "links.shop.de", "links.shop.de"),
        # Full-width letters and dots, as typed with an East Asian input method.
        ("ｌｉｎｋｓ．ｓｈｏｐ．ｄｅ", "links.shop.de", "links.shop.de"),
        ("links。shop。de", "links.shop.de", "links.shop.de"),
        ("links.bücher.de", "links.xn--bcher-kva.de", "links.bücher.de"),
        ("LINKS.BÜCHER.DE", "links.xn--bcher-kva.de", "links.bücher.de"),
        # Decomposed ü (u + combining diaeresis) is composed first.
        ("links.bu\u0308cher.de", "links.xn--bcher-kva.de", "links.bücher.de"),
        ("links.xn--bcher-kva.de", "links.xn--bcher-kva.de", "links.bücher.de"),
        ("Links.XN--BCHER-KVA.de", "links.xn--bcher-kva.de", "links.bücher.de"),
        # IDNA 2008 keeps ß (IDNA 2003 turned it into "ss").
        ("straße.de", "xn--strae-oqa.de", "straße.de"),
        ("links.shop.рф", "links.shop.xn--p1ai", "links.shop.рф"),
        ("links.بازار.ir", "links.xn--mgbab2bd.ir", "links.بازار.ir"),
        # Soft hyphens and byte order marks are ignored by the UTS #46 mapping.
        ("lin\u00adks.shop.de", "links.shop.de", "links.shop.de"),
        ("\ufefflinks.shop.de", "links.shop.de", "links.shop.de"),
        ("my-links.shop.de", "my-links.shop.de", "my-links.shop.de"),
        ("123.1und1.de", "123.1und1.de", "123.1und1.de"),
        (f"{LONGEST_LABEL}.de", f"{LONGEST_LABEL}.de", f"{LONGEST_LABEL}.de"),
        (LONGEST_NAME, LONGEST_NAME, LONGEST_NAME),
        (LONGEST_NAME + ".", LONGEST_NAME, LONGEST_NAME),
    ],
)
def test_accepted_names_are_normalized(raw: str, ascii: str, unicode: str) -> None:
    result = validate(raw)
    assert result.ascii == ascii
    assert result.unicode == unicode


@pytest.mark.parametrize(
    ("name", "registrable"),
    [
        ("links.shop.de", "shop.de"),
        ("shop.de", "shop.de"),
        ("a.b.c.shop.com", "shop.com"),
        ("links.example.co.uk", "example.co.uk"),
        ("links.bücher.de", "xn--bcher-kva.de"),
        ("links.shop.рф", "shop.xn--p1ai"),
        # Private-section suffixes count too.
        ("links.someone.github.io", "someone.github.io"),
        # A wildcard rule (*.kawasaki.jp) and its exception (!city.kawasaki.jp).
        ("links.shop.kawasaki.jp", "links.shop.kawasaki.jp"),
        ("www.city.kawasaki.jp", "city.kawasaki.jp"),
        # A top-level domain the list doesn't know is a one-label suffix.
        ("links.shop.unlistedtld", "shop.unlistedtld"),
    ],
)
def test_registrable_domain(name: str, registrable: str) -> None:
    assert validate(name).registrable == registrable
    assert registrable_domain(name) == registrable


def test_result_is_a_plain_value() -> None:
    assert validate("Links.Shop.DE") == DomainName("links.shop.de", "links.shop.de", "shop.de")


# ---------------------------------------------------------------------------------------------
# Rejected names: one table for all rules, so that every code has examples


REJECTED: list[tuple[str, ErrorCode]] = [
    ("", ErrorCode.EMPTY),
    ("   ", ErrorCode.EMPTY),
    (".", ErrorCode.EMPTY),
    ("。", ErrorCode.EMPTY),
    ("\u200b", ErrorCode.EMPTY),
    ("https://links.shop.de/path", ErrorCode.LOOKS_LIKE_URL),
    ("http://links.shop.de", ErrorCode.LOOKS_LIKE_URL),
    ("links.shop.de/", ErrorCode.LOOKS_LIKE_URL),
    ("links.shop.de:8443", ErrorCode.LOOKS_LIKE_URL),
    ("//links.shop.de", ErrorCode.LOOKS_LIKE_URL),
    ("links.shop.de?utm=1", ErrorCode.LOOKS_LIKE_URL),
    ("links.shop.de#top", ErrorCode.LOOKS_LIKE_URL),
    ("anna@shop.de", ErrorCode.LOOKS_LIKE_URL),
    ("https://links.shop.de/a b c", ErrorCode.LOOKS_LIKE_URL),
    ("ｈｔｔｐｓ：／／links.shop.de／", ErrorCode.LOOKS_LIKE_URL),
    ("links shop.de", ErrorCode.CONTAINS_SPACE),
    ("links.shop.de\nlinks2.shop.de", ErrorCode.CONTAINS_SPACE),
    ("links\u3000shop.de", ErrorCode.CONTAINS_SPACE),
    ("links.shop.de\x00", ErrorCode.CONTROL_CHARACTER),
    ("links\x7f.shop.de", ErrorCode.CONTROL_CHARACTER),
    ("links\x1b.shop.de", ErrorCode.CONTROL_CHARACTER),
    ("links!.shop.de", ErrorCode.INVALID_CHARACTER),
    ("li[n]ks.shop.de", ErrorCode.INVALID_CHARACTER),
    ("a*b.shop.de", ErrorCode.INVALID_CHARACTER),
    ("links\\shop.de", ErrorCode.INVALID_CHARACTER),
    ("links\ud800.shop.de", ErrorCode.INVALID_CHARACTER),
    ("links\u202e.shop.de", ErrorCode.INVALID_CHARACTER),
    ("links\u2024shop.de", ErrorCode.INVALID_CHARACTER),
    ("a_b.shop.de", ErrorCode.UNDERSCORE),
    ("_dmarc.shop.de", ErrorCode.UNDERSCORE),
    ("a..b.de", ErrorCode.EMPTY_LABEL),
    (".shop.de", ErrorCode.EMPTY_LABEL),
    ("shop.de..", ErrorCode.EMPTY_LABEL),
    (f"{LONGEST_LABEL}a.de", ErrorCode.LABEL_TOO_LONG),
    (f"{WIDE_ULABEL}.cn", ErrorCode.LABEL_TOO_LONG),
    (LONGEST_NAME.replace("de", "com"), ErrorCode.TOO_LONG),
    ("x" * 5000, ErrorCode.TOO_LONG),
    ("a." * 150 + "de", ErrorCode.TOO_LONG),
    ("-links.shop.de", ErrorCode.HYPHEN_POSITION),
    ("links-.shop.de", ErrorCode.HYPHEN_POSITION),
    ("a.xn--.de", ErrorCode.HYPHEN_POSITION),
    ("ab--cd.shop.de", ErrorCode.RESERVED_HYPHENS),
    ("ab--ü.de", ErrorCode.RESERVED_HYPHENS),
    ("xn--zz.de", ErrorCode.INVALID_ALABEL),
    # A non-canonical spelling of a valid A-label.
    ("xn---bbk.de", ErrorCode.INVALID_ALABEL),
    # Decodes fine, but to a snowman, which IDNA 2008 doesn't allow.
    ("xn--n3h.net", ErrorCode.INVALID_IDN),
    ("☃.net", ErrorCode.INVALID_IDN),
    ("links.a\u200db.de", ErrorCode.INVALID_IDN),
    ("\u0308a.de", ErrorCode.INVALID_IDN),
    ("aא.de", ErrorCode.INVALID_IDN),
    ("192.0.2.1", ErrorCode.IP_ADDRESS),
    ("192.0.2.1.", ErrorCode.IP_ADDRESS),
    ("１９２．０．２．１", ErrorCode.IP_ADDRESS),
    ("::1", ErrorCode.IP_ADDRESS),
    ("[::1]", ErrorCode.IP_ADDRESS),
    ("2001:db8::1", ErrorCode.IP_ADDRESS),
    ("[2001:DB8::1]", ErrorCode.IP_ADDRESS),
    ("fe80::1%eth0", ErrorCode.IP_ADDRESS),
    ("*.shop.de", ErrorCode.WILDCARD),
    ("*", ErrorCode.WILDCARD),
    ("links.*.de", ErrorCode.WILDCARD),
    ("intranet", ErrorCode.SINGLE_LABEL),
    ("de", ErrorCode.SINGLE_LABEL),
    ("bücher", ErrorCode.SINGLE_LABEL),
    ("1.2.3", ErrorCode.NUMERIC_TLD),
    ("links.shop.123", ErrorCode.NUMERIC_TLD),
    ("co.uk", ErrorCode.PUBLIC_SUFFIX),
    ("CO.UK.", ErrorCode.PUBLIC_SUFFIX),
    ("github.io", ErrorCode.PUBLIC_SUFFIX),
    ("s3.amazonaws.com", ErrorCode.PUBLIC_SUFFIX),
    ("shop.kawasaki.jp", ErrorCode.PUBLIC_SUFFIX),
    ("localhost", ErrorCode.RESERVED_NAME),
    ("app.localhost", ErrorCode.RESERVED_NAME),
    ("printer.local", ErrorCode.RESERVED_NAME),
    ("db.internal", ErrorCode.RESERVED_NAME),
    ("nothing.invalid", ErrorCode.RESERVED_NAME),
    ("links.example", ErrorCode.RESERVED_NAME),
    ("example.com", ErrorCode.RESERVED_NAME),
    ("links.example.com", ErrorCode.RESERVED_NAME),
    ("www.example.net", ErrorCode.RESERVED_NAME),
    ("links.example.org", ErrorCode.RESERVED_NAME),
    ("router.home.arpa", ErrorCode.RESERVED_NAME),
    ("1.0.0.127.in-addr.arpa", ErrorCode.RESERVED_NAME),
    ("arpa", ErrorCode.RESERVED_NAME),
    ("something.onion", ErrorCode.RESERVED_NAME),
    ("links.shop.alt", ErrorCode.RESERVED_NAME),
    ("links.shop.test", ErrorCode.TEST_DOMAIN),
    ("shop.test", ErrorCode.TEST_DOMAIN),
]


@pytest.mark.parametrize(("name", "code"), REJECTED)
def test_rejected(name: str, code: ErrorCode) -> None:
    err = rejection(name)
    assert err.code == code
    assert str(err) == err.message


def test_every_code_has_a_rejected_example() -> None:
    # PLATFORM_DOMAIN needs a policy and has its own tests below.
    covered = {code for _, code in REJECTED} | {ErrorCode.PLATFORM_DOMAIN}
    assert covered == set(ErrorCode)


def test_codes_are_stable_snake_case_strings() -> None:
    for code in ErrorCode:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code.value)
    err = rejection("")
    assert type(err.code) is str
    assert err.code == "empty"


@pytest.mark.parametrize(("name", "code"), REJECTED)
def test_messages_are_plain_language(name: str, code: ErrorCode) -> None:
    message = rejection(name).message
    assert message == message.strip()
    # No wording from the underlying libraries, no Python escapes, no raw control characters.
    for leak in ("IDNA", "Codepoint", "codepoint", "\\x", "\\u", "Traceback"):
        assert leak not in message
    assert message.isprintable()
    message.encode("utf-8")  # would fail on a lone surrogate


# ---------------------------------------------------------------------------------------------
# Messages for particular rules


@pytest.mark.parametrize(
    ("pasted", "domain"),
    [
        ("https://links.shop.de/path?x=1", "links.shop.de"),
        ("HTTPS://Links.Shop.DE", "links.shop.de"),
        ("links.shop.de:443", "links.shop.de"),
        ("https://user:secret@links.shop.de:8443/", "links.shop.de"),
        ("https://links.bücher.de/", "links.bücher.de"),
        ("https://links.xn--bcher-kva.de/", "links.xn--bcher-kva.de"),
    ],
)
def test_pasted_url_shows_the_domain_name(pasted: str, domain: str) -> None:
    err = rejection(pasted)
    assert err.code == ErrorCode.LOOKS_LIKE_URL
    assert "Enter only the domain name" in err.message
    assert err.message.endswith(domain)


def test_pasted_url_with_an_unacceptable_host_gets_no_suggestion() -> None:
    err = rejection("https://localhost:8080/")
    assert err.code == ErrorCode.LOOKS_LIKE_URL
    assert "Enter only the domain name" in err.message
    assert "localhost" not in err.message


def test_email_address_is_called_an_email_address() -> None:
    err = rejection("anna@shop.de")
    assert "email address" in err.message
    assert err.message.endswith("shop.de")


def test_public_suffix_message_suggests_a_name_under_it() -> None:
    assert rejection("co.uk").message == (
        "'co.uk' is a public suffix: enter a name under it, such as links.example.co.uk."
    )


def test_space_message() -> None:
    assert rejection("links shop.de").message == "A domain name can't contain spaces."


def test_invalid_character_is_shown() -> None:
    assert "'!'" in rejection("links!.shop.de").message
    # Invisible characters are shown by code point, never as themselves.
    assert "U+202E" in rejection("links\u202e.shop.de").message
    assert "U+0000" in rejection("a\x00.de").message


def test_long_labels_are_shortened_in_messages() -> None:
    message = rejection("x" * 64 + ".de").message
    assert "x" * 64 not in message
    assert "…" in message


def test_home_arpa_gets_its_own_message() -> None:
    assert "home network" in rejection("router.home.arpa").message


def test_bidi_violation_is_explained() -> None:
    assert "right-to-left" in rejection("aא.de").message


# ---------------------------------------------------------------------------------------------
# Policy: .test and the platform's own domains


@pytest.mark.parametrize(
    ("name", "registrable"),
    [
        ("links.shop.test", "shop.test"),
        ("shop.test", "shop.test"),
        ("a.b.shop.test", "shop.test"),
        ("LINKS.Shop.TEST.", "shop.test"),
    ],
)
def test_test_domains_allowed_by_policy(name: str, registrable: str) -> None:
    assert validate(name, TEST_POLICY).registrable == registrable


def test_test_domains_rejected_by_default() -> None:
    assert rejection("links.shop.test").code == ErrorCode.TEST_DOMAIN
    assert rejection("links.shop.test", NamePolicy()).code == ErrorCode.TEST_DOMAIN


def test_policy_for_test_domains_allows_nothing_else() -> None:
    assert rejection("test", TEST_POLICY).code == ErrorCode.SINGLE_LABEL
    assert rejection("printer.local", TEST_POLICY).code == ErrorCode.RESERVED_NAME
    assert rejection("links.example.com", TEST_POLICY).code == ErrorCode.RESERVED_NAME


@pytest.mark.parametrize(
    "name",
    [
        "platform-links.net",
        "x.platform-links.net",
        "a.b.PLATFORM-LINKS.NET.",
        "https://x.platform-links.net/",  # as a URL it is still refused, with no suggestion
        "plattform-bücher.de",
        "x.xn--plattform-bcher-9vb.de",
    ],
)
def test_platform_domains_are_rejected(name: str) -> None:
    err = rejection(name, PLATFORM_POLICY)
    if name.startswith("https://"):
        assert err.code == ErrorCode.LOOKS_LIKE_URL
        assert "platform-links.net" not in err.message
    else:
        assert err.code == ErrorCode.PLATFORM_DOMAIN
        assert "the platform's own domains" in err.message


@pytest.mark.parametrize(
    "name",
    ["notplatform-links.net", "platform-links.net.shop.de", "links.platform-links.com"],
)
def test_names_merely_resembling_platform_domains_are_accepted(name: str) -> None:
    validate(name, PLATFORM_POLICY)


def test_platform_domain_under_test_tld() -> None:
    policy = NamePolicy(allow_test_domains=True, platform_domains=("platform.test",))
    assert rejection("x.platform.test", policy).code == ErrorCode.PLATFORM_DOMAIN
    assert validate("links.shop.test", policy).ascii == "links.shop.test"


def test_policy_keeps_the_domains_as_given() -> None:
    assert PLATFORM_POLICY.platform_domains == ("Platform-Links.NET.", "plattform-bücher.de")
    assert NamePolicy(platform_domains=("A.de",)) == NamePolicy(platform_domains=("A.de",))


def test_policy_refuses_a_malformed_platform_domain() -> None:
    with pytest.raises(ValueError, match="platform domain"):
        NamePolicy(platform_domains=("https://platform-links.net/",))


def test_policy_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError):
        NamePolicy(platform_domains="platform-links.net")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Helpers and input types


def test_normalize_checks_syntax_only() -> None:
    assert normalize(" LINKS.Bücher.de. ") == "links.xn--bcher-kva.de"
    assert normalize("localhost") == "localhost"
    assert normalize("co.uk") == "co.uk"
    with pytest.raises(DomainNameError) as info:
        normalize("a..b")
    assert info.value.code == ErrorCode.EMPTY_LABEL


def test_registrable_domain_rejects_public_suffixes() -> None:
    with pytest.raises(DomainNameError) as info:
        registrable_domain("co.uk")
    assert info.value.code == ErrorCode.PUBLIC_SUFFIX
    with pytest.raises(DomainNameError) as info:
        registrable_domain("intranet")
    assert info.value.code == ErrorCode.SINGLE_LABEL


@pytest.mark.parametrize(
    ("name", "domain", "expected"),
    [
        ("x.platform.net", "platform.net", True),
        ("X.Platform.NET.", "platform.net", True),
        ("platform.net", "PLATFORM.net.", True),
        ("xplatform.net", "platform.net", False),
        ("platform.net", "x.platform.net", False),
        ("links.bücher.de", "xn--bcher-kva.de", True),
    ],
)
def test_is_within(name: str, domain: str, expected: bool) -> None:
    assert is_within(name, domain) is expected


@pytest.mark.parametrize("value", [None, b"links.shop.de", 42, ["links.shop.de"]])
def test_non_str_input_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        validate(value)  # type: ignore[arg-type]


def test_error_is_a_value_error() -> None:
    # Callers that already handle ValueError for bad input keep working.
    with pytest.raises(ValueError):
        validate("a..b")
