"""Domain names: normalization and validation of the names customers enter.

A customer types the name of their link tracking domain (``links.example.com``) into the
account page or the API. Before linkcert checks its DNS or asks a CA for a certificate,
:func:`validate` turns that text into one canonical form and rejects anything that can never
get a publicly trusted certificate, with a message written for the customer.

Normalization follows IDNA 2008 with the UTS #46 mapping (as browsers do): surrounding
whitespace is stripped, full-width and other compatibility characters are mapped, letters are
lowercased, one trailing dot is dropped, and international labels are converted to their
``xn--`` A-label form.

Public suffixes come from the Public Suffix List that ships with the ``publicsuffixlist``
package. Both its ICANN and its private sections count: a certificate for ``github.io`` or
``co.uk`` itself is never what a customer means. A top-level domain the list doesn't know is
treated as a one-label suffix (the list's default ``*`` rule), so ``links.shop.test`` has the
registrable domain ``shop.test``.

Every rejection is a :class:`DomainNameError` whose ``code`` is one of :class:`ErrorCode`
(stable, for programs) and whose ``message`` can be shown to the customer as it is.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import idna
from publicsuffixlist import PublicSuffixList

__all__ = [
    "STORED_NAMES",
    "DomainName",
    "DomainNameError",
    "ErrorCode",
    "NamePolicy",
    "is_within",
    "lookup_form",
    "normalize",
    "registrable_domain",
    "validate",
]


class NameSettings(Protocol):
    """The settings the platform's name policy is made of (of `Settings`, or the few the short
    commands read)."""

    @property
    def allow_test_domains(self) -> bool: ...
    @property
    def platform_domains(self) -> tuple[str, ...]: ...
    @property
    def cname_targets(self) -> tuple[str, ...]: ...


# Limits from RFC 1035, counted in octets of the ASCII (A-label) form.
MAX_NAME_OCTETS = 253
MAX_LABEL_OCTETS = 63

# Anything longer than this can't be a domain name even before mapping; cutting it off early
# keeps the work per call bounded (the idna package refuses longer input as well).
_MAX_INPUT_CHARS = 1024

# The longest text from the input that a message repeats back.
_MAX_ECHO_CHARS = 60

_EXAMPLE = "links.example.com"


class ErrorCode(StrEnum):
    """Stable identifiers for the rules a name can break (the ``code`` of DomainNameError)."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    LOOKS_LIKE_URL = "looks_like_url"
    CONTAINS_SPACE = "contains_space"
    CONTROL_CHARACTER = "control_character"
    INVALID_CHARACTER = "invalid_character"
    UNDERSCORE = "underscore"
    EMPTY_LABEL = "empty_label"
    LABEL_TOO_LONG = "label_too_long"
    HYPHEN_POSITION = "hyphen_position"
    RESERVED_HYPHENS = "reserved_hyphens"
    INVALID_ALABEL = "invalid_alabel"
    INVALID_IDN = "invalid_idn"
    IP_ADDRESS = "ip_address"
    WILDCARD = "wildcard"
    SINGLE_LABEL = "single_label"
    NUMERIC_TLD = "numeric_tld"
    PUBLIC_SUFFIX = "public_suffix"
    RESERVED_NAME = "reserved_name"
    TEST_DOMAIN = "test_domain"
    PLATFORM_DOMAIN = "platform_domain"


class DomainNameError(ValueError):
    """A domain name that linkcert will not accept, with a stable code and a plain message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        # Kept as a plain str so that callers can compare, log and serialize it directly.
        self.code = str(code)
        self.message = message


@dataclass(frozen=True)
class NamePolicy:
    """What the platform accepts beyond the public rules.

    ``allow_test_domains`` lets names under ``.test`` through, for local setups with a test
    CA and DNS server. ``platform_domains`` are the platform's own domains: neither they nor
    any name under them can be claimed by a customer. They are normalized when the policy is
    made, and a malformed one raises ValueError then, rather than silently matching nothing.
    """

    allow_test_domains: bool = False
    platform_domains: tuple[str, ...] = ()
    _platform_ascii: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        # A bare string would be iterated character by character: catch that mistake here.
        if isinstance(self.platform_domains, str):
            raise TypeError("platform_domains must be a tuple of names, not a single str")
        normalized = []
        for domain in self.platform_domains:
            try:
                normalized.append(normalize(domain))
            except DomainNameError as err:
                raise ValueError(f"invalid platform domain {domain!r}: {err.message}") from err
        object.__setattr__(self, "_platform_ascii", tuple(normalized))

    @classmethod
    def from_settings(cls, settings: NameSettings) -> NamePolicy:
        """The platform's policy: the one every command, the API, the pages and the worker use.

        Every platform name is refused: `platform_domains`, the CNAME targets and the
        registrable domains the targets are in (see `platform_names`).
        """
        return cls(settings.allow_test_domains, platform_names(settings))


def platform_names(settings: NameSettings) -> tuple[str, ...]:
    """The platform's own names, which no account may claim: `platform_domains`, each CNAME
    target and the registrable domain it is in."""
    names: list[str] = list(settings.platform_domains)
    for target in settings.cname_targets:
        host = target.strip().rstrip(".").lower()
        if not host:
            continue
        names.append(host)
        # A target that is itself a public suffix has no registrable domain: it is refused alone.
        with contextlib.suppress(DomainNameError):
            names.append(registrable_domain(host))
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class DomainName:
    """A validated name: ASCII (A-label) form, Unicode form, and its registrable domain.

    ``registrable`` is in ASCII form: the public suffix plus one label, the unit CAs count
    certificates by.
    """

    ascii: str
    unicode: str
    registrable: str


@dataclass(frozen=True)
class _Labels:
    """A syntactically valid name, label by label, in both forms."""

    ascii: tuple[str, ...]
    unicode: tuple[str, ...]


_DEFAULT_POLICY = NamePolicy()
# For reading back names that were accepted when saved (under NamePolicy.from_settings): a
# later change of the settings must not make a stored name impossible to find or show.
STORED_NAMES = NamePolicy(allow_test_domains=True)

# Reserved and special-use names (RFC 2606, 6761, 6762, 7686, 8375, 9476, and ICANN's
# reservation of .internal). Each entry covers the name itself and every name under it.
_RESERVED: dict[str, str] = {
    "local": "Names ending in .local are for devices on a local network and can't get a "
    "public certificate.",
    "localhost": "localhost and names ending in .localhost always point to your own "
    "computer and can't get a public certificate.",
    "internal": "Names ending in .internal are for private networks and can't get a public "
    "certificate.",
    "invalid": "Names ending in .invalid are reserved for names that must never work.",
    "example": "Names ending in .example are reserved for documentation and examples. "
    "Enter a domain of your own.",
    "example.com": "example.com is reserved for documentation and examples. "
    "Enter a domain of your own.",
    "example.net": "example.net is reserved for documentation and examples. "
    "Enter a domain of your own.",
    "example.org": "example.org is reserved for documentation and examples. "
    "Enter a domain of your own.",
    "home.arpa": "Names ending in .home.arpa are for home networks and can't get a public "
    "certificate.",
    "arpa": "Names ending in .arpa are reserved for the internet's own infrastructure.",
    "onion": "Names ending in .onion belong to the Tor network and can't get a certificate here.",
    "alt": "Names ending in .alt are reserved for systems outside the DNS and can't get a "
    "public certificate.",
}
_TEST_TLD = "test"

_LDH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.\-]*://", re.IGNORECASE)
_URL_MARKERS = ("/", "?", "#", "@")


# ---------------------------------------------------------------------------------------------
# Public helpers


def validate(name: str, policy: NamePolicy | None = None) -> DomainName:
    """Normalize and validate `name`, raising DomainNameError with the rule it breaks.

    Accepts what a customer would type or paste: any case, full-width characters, a trailing
    dot, surrounding whitespace, Unicode or ``xn--`` labels.
    """
    policy = _DEFAULT_POLICY if policy is None else policy
    labels = _parse(name, policy)
    _check_tld(labels)
    _check_platform(labels, policy)
    _check_reserved(labels, policy)
    _check_single_label(labels)
    return DomainName(
        ascii=".".join(labels.ascii),
        unicode=".".join(labels.unicode),
        registrable=_registrable(labels),
    )


def lookup_form(name: str, policy: NamePolicy | None = None) -> str:
    """The form a stored name is looked up by: its normalized ASCII form, or, for a name that
    no longer validates (say, after a policy change), simple folding, so it is still found."""
    try:
        return validate(name, policy or STORED_NAMES).ascii
    except Exception:
        return name.strip().rstrip(".").lower()


def normalize(name: str) -> str:
    """Return the canonical ASCII form of `name`, checking its syntax only.

    Unlike validate(), this doesn't reject names for what they are (reserved, public suffix,
    single label, ...): it is for comparing names, such as DNS targets and configuration.
    """
    return ".".join(_parse(name, _DEFAULT_POLICY).ascii)


def registrable_domain(name: str) -> str:
    """Return the registrable domain of `name` (public suffix plus one label), ASCII form.

    Raises DomainNameError if `name` is malformed or is itself a public suffix.
    """
    labels = _parse(name, _DEFAULT_POLICY)
    _check_single_label(labels)
    return _registrable(labels)


def is_within(name: str, domain: str) -> bool:
    """Tell whether `name` is `domain` or a name under it, comparing normalized forms.

    Raises DomainNameError if either is malformed.
    """
    return _is_within_ascii(normalize(name), normalize(domain))


# ---------------------------------------------------------------------------------------------
# Parsing: from raw text to checked labels


def _parse(name: str, policy: NamePolicy) -> _Labels:
    """Normalize `name` and check its syntax, label by label."""
    if not isinstance(name, str):
        raise TypeError(f"a domain name must be a str, not {type(name).__name__}")
    text = name.strip()
    if not text:
        raise _error(ErrorCode.EMPTY, f"Enter a domain name, such as {_EXAMPLE}.")
    # The raw text is checked for URL shape before anything else so that a pasted address gets
    # the most useful message even if its path contains spaces or other odd characters.
    _check_url(text, policy)
    if len(text) > _MAX_INPUT_CHARS:
        raise _too_long()
    _check_raw_characters(text)
    mapped = _map(text)
    mapped = mapped.removesuffix(".")
    if not mapped:
        raise _error(ErrorCode.EMPTY, f"Enter a domain name, such as {_EXAMPLE}.")
    # Mapping can turn full-width look-alikes into ':', '/', '@' or spaces: check again.
    _check_url(mapped, policy)
    if " " in mapped:
        raise _error(ErrorCode.CONTAINS_SPACE, "A domain name can't contain spaces.")
    _check_ip_literal(mapped)
    # The ASCII form is never shorter than the mapped text, so this bounds the work below.
    if len(mapped) > MAX_NAME_OCTETS:
        raise _too_long()
    pairs = [_parse_label(label) for label in mapped.split(".")]
    labels = _Labels(
        ascii=tuple(a for a, _ in pairs),
        unicode=tuple(u for _, u in pairs),
    )
    if sum(len(a) for a in labels.ascii) + len(labels.ascii) - 1 > MAX_NAME_OCTETS:
        raise _too_long()
    return labels


def _map(text: str) -> str:
    """Apply the UTS #46 mapping (case folding, width and compatibility forms, NFC).

    STD3 rules are off here so that characters like '_' or '/' survive the mapping and get a
    specific message from the checks that follow, instead of a generic one.
    """
    try:
        return idna.uts46_remap(text, std3_rules=False)
    except idna.IDNAError as err:
        if err.codepoint is not None:
            raise _bad_character(chr(err.codepoint)) from None
        raise _too_long() from None


def _check_raw_characters(text: str) -> None:
    """Reject whitespace, control characters and lone surrogates with specific messages."""
    for ch in text:
        if ch.isspace():
            raise _error(ErrorCode.CONTAINS_SPACE, "A domain name can't contain spaces.")
        category = unicodedata.category(ch)
        if category == "Cc":
            raise _error(
                ErrorCode.CONTROL_CHARACTER,
                f"A domain name can't contain invisible control characters ({_char_code(ch)}).",
            )
        if category == "Cs":
            raise _bad_character(ch)


def _check_url(text: str, policy: NamePolicy) -> None:
    """Reject a pasted web address or email address, suggesting the domain name in it."""
    if not _looks_like_url(text):
        return
    is_email = "@" in text and _SCHEME_RE.match(text) is None and "/" not in text
    what = "an email address" if is_email else "a web address"
    suggestion = _suggest_from_url(text, policy)
    if suggestion:
        message = f"That looks like {what}. Enter only the domain name: {suggestion}"
    else:
        message = (
            f"That looks like {what}, not a domain name. Enter only the domain name, without "
            f"https://, a path or a port, such as {_EXAMPLE}."
        )
    raise _error(ErrorCode.LOOKS_LIKE_URL, message)


def _looks_like_url(text: str) -> bool:
    """Tell whether `text` has parts of a URL or email address around a host name."""
    if any(marker in text for marker in _URL_MARKERS):
        return True
    # A colon marks a scheme or a port, except in an IPv6 address, which has its own message.
    return ":" in text and not _is_ip_literal(text)


def _suggest_from_url(text: str, policy: NamePolicy) -> str | None:
    """Return the host in a URL-shaped `text` if it is itself an acceptable name."""
    rest = text
    scheme = _SCHEME_RE.match(rest)
    if scheme:
        rest = rest[scheme.end() :]
    elif rest.startswith("//"):
        rest = rest[2:]
    host = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = host.rpartition("@")[2]
    before, colon, port = host.rpartition(":")
    if colon and (port.isdigit() or not port):
        host = before
    # Only a clean host is worth suggesting; this also keeps the check below from recursing.
    if not host or len(host) > _MAX_INPUT_CHARS or _looks_like_url(host):
        return None
    try:
        result = validate(host, policy)
    except DomainNameError:
        return None
    return result.ascii if host.isascii() else result.unicode


def _is_ip_literal(text: str) -> bool:
    """Tell whether `text` is an IPv4 or IPv6 address, possibly in brackets or with a dot."""
    if len(text) > 64:  # longer than any address, even with an IPv6 zone: skip the parse
        return False
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ipaddress.ip_address(text.removesuffix("."))
    except ValueError:
        return False
    return True


def _check_ip_literal(text: str) -> None:
    """Reject IP addresses: certificates here are for domain names only."""
    if _is_ip_literal(text):
        raise _error(
            ErrorCode.IP_ADDRESS,
            f"That's an IP address. Enter a domain name instead, such as {_EXAMPLE}.",
        )


def _parse_label(label: str) -> tuple[str, str]:
    """Check one mapped label and return its (A-label, U-label) forms."""
    if not label:
        raise _error(
            ErrorCode.EMPTY_LABEL,
            "A domain name can't start with a dot or have two dots in a row.",
        )
    if label == "*":
        raise _error(
            ErrorCode.WILDCARD,
            "Wildcard names (like *.example.com) aren't supported: each domain gets a "
            f"certificate for one exact name. Enter the name your links use, such as {_EXAMPLE}.",
        )
    if len(label) > MAX_LABEL_OCTETS:
        raise _label_too_long(label)
    _check_ascii_characters(label)
    if label.startswith("-") or label.endswith("-"):
        raise _error(
            ErrorCode.HYPHEN_POSITION,
            f"A part of a domain name can't start or end with a hyphen: {_echo(label)}.",
        )
    if label.isascii():
        if label.startswith("xn--"):
            return label, _decode_alabel(label)
        if label[2:4] == "--":
            raise _reserved_hyphens(label)
        return label, label
    if label[2:4] == "--":
        raise _reserved_hyphens(label)
    return _encode_ulabel(label), label


def _check_ascii_characters(label: str) -> None:
    """Enforce letters, digits and hyphens for the ASCII characters of a label.

    Non-ASCII characters are left to the IDNA 2008 rules.
    """
    for ch in label:
        if ch.isascii() and ch not in _LDH_CHARS:
            if ch == "_":
                raise _error(
                    ErrorCode.UNDERSCORE,
                    "A domain name for a certificate can't contain an underscore ('_'). Use a "
                    "name made of letters, digits and hyphens.",
                )
            raise _bad_character(ch)


def _decode_alabel(label: str) -> str:
    """Return the U-label of an ``xn--`` label, which must be canonical and valid IDNA 2008."""
    try:
        return idna.ulabel(label)
    except idna.IDNAError as err:
        if err.code in ("invalid_alabel", "non_canonical_alabel"):
            raise _error(
                ErrorCode.INVALID_ALABEL,
                f"{_echo(label)} looks like an encoded international name but isn't valid. "
                "Check that it was copied correctly, or enter the name in its own script.",
            ) from None
        raise _invalid_idn(label, err) from None


def _encode_ulabel(label: str) -> str:
    """Return the A-label of a Unicode label, which must be valid IDNA 2008."""
    try:
        alabel = idna.alabel(label).decode("ascii")
    except idna.IDNAError as err:
        if err.code == "label_too_long":
            raise _label_too_long(label) from None
        raise _invalid_idn(label, err) from None
    except UnicodeError:
        # The punycode codec itself can fail on pathological input.
        raise _invalid_idn(label, None) from None
    return alabel


# ---------------------------------------------------------------------------------------------
# Rules about what a (syntactically valid) name is


def _check_tld(labels: _Labels) -> None:
    """Reject an all-digit top-level domain: no such TLD can exist, and it hints at an IP."""
    if labels.ascii[-1].isdigit():
        raise _error(
            ErrorCode.NUMERIC_TLD,
            "The last part of a domain name (like .com) can't be all digits.",
        )


def _check_platform(labels: _Labels, policy: NamePolicy) -> None:
    """Reject the platform's own domains and anything under them."""
    ascii_name = ".".join(labels.ascii)
    for domain in policy._platform_ascii:
        if _is_within_ascii(ascii_name, domain):
            raise _error(
                ErrorCode.PLATFORM_DOMAIN,
                f"{_echo('.'.join(labels.unicode))} is one of the platform's own domains. "
                f"Enter a domain of your own, such as {_EXAMPLE}.",
            )


def _check_reserved(labels: _Labels, policy: NamePolicy) -> None:
    """Reject reserved and special-use names, and .test unless the policy allows it."""
    # Longest suffix first, so that home.arpa gets its own message rather than the .arpa one.
    for start in range(len(labels.ascii)):
        suffix = ".".join(labels.ascii[start:])
        message = _RESERVED.get(suffix)
        if message is not None:
            raise _error(ErrorCode.RESERVED_NAME, message)
    if labels.ascii[-1] == _TEST_TLD and not policy.allow_test_domains:
        raise _error(
            ErrorCode.TEST_DOMAIN,
            "Names ending in .test are reserved for testing and can't get a public certificate.",
        )


def _check_single_label(labels: _Labels) -> None:
    """Reject a name with no dot: it can't be a public name a customer controls."""
    if len(labels.ascii) == 1:
        raise _error(
            ErrorCode.SINGLE_LABEL,
            f"{_echo(labels.unicode[0])} is a single word, not a full domain name. "
            f"Enter a name with at least one dot, such as {_EXAMPLE}.",
        )


def _registrable(labels: _Labels) -> str:
    """Return the public suffix plus one label, or reject a name that is a public suffix."""
    # The list holds Unicode labels, so it is asked with the Unicode form; the answer is used
    # only for its number of labels, which is the same in both forms.
    suffix = _psl().publicsuffix(".".join(labels.unicode))
    suffix_labels = 1 if suffix is None else suffix.count(".") + 1
    if suffix_labels >= len(labels.ascii):
        shown = ".".join(labels.unicode)
        raise _error(
            ErrorCode.PUBLIC_SUFFIX,
            f"{_echo(shown)} is a public suffix: enter a name under it, such as "
            f"links.example.{shown}.",
        )
    return ".".join(labels.ascii[-(suffix_labels + 1) :])


@functools.cache
def _psl() -> PublicSuffixList:
    """The Public Suffix List shipped with the package, parsed once on first use.

    Only its Unicode entries are kept: names are looked up in Unicode form, which avoids the
    package converting every entry to ASCII with the older IDNA 2003 rules.
    """
    return PublicSuffixList(accept_unknown=True, accept_encoded_idn=False)


def _is_within_ascii(name: str, domain: str) -> bool:
    """Tell whether normalized `name` equals normalized `domain` or lies under it."""
    return name == domain or name.endswith("." + domain)


# ---------------------------------------------------------------------------------------------
# Messages


def _error(code: ErrorCode, message: str) -> DomainNameError:
    return DomainNameError(code, message)


def _too_long() -> DomainNameError:
    return _error(
        ErrorCode.TOO_LONG,
        f"That's too long for a domain name: it can have at most {MAX_NAME_OCTETS} characters "
        "(international names count in their encoded xn-- form).",
    )


def _label_too_long(label: str) -> DomainNameError:
    return _error(
        ErrorCode.LABEL_TOO_LONG,
        f"Each part of a domain name between dots can have at most {MAX_LABEL_OCTETS} "
        f"characters (international ones count in their encoded xn-- form): {_echo(label)} "
        "is too long.",
    )


def _reserved_hyphens(label: str) -> DomainNameError:
    return _error(
        ErrorCode.RESERVED_HYPHENS,
        f"{_echo(label)} has hyphens as its 3rd and 4th characters, which only encoded "
        "international names (starting with xn--) may have.",
    )


def _bad_character(ch: str) -> DomainNameError:
    return _error(
        ErrorCode.INVALID_CHARACTER,
        "A domain name can only contain letters, digits, hyphens and dots; "
        f"{_describe_char(ch)} isn't allowed.",
    )


def _invalid_idn(label: str, err: idna.IDNAError | None) -> DomainNameError:
    """Explain why a label isn't a valid international name, in the customer's terms."""
    code = err.code if err is not None else None
    if code is not None and code.startswith("bidi_"):
        reason = "it mixes right-to-left and left-to-right text in a way domain names don't allow"
    elif code == "leading_combiner":
        reason = "it starts with a combining mark"
    elif err is not None and err.codepoint is not None:
        reason = f"{_describe_char(chr(err.codepoint))} isn't allowed there"
    else:
        reason = "it isn't a valid international domain name"
    return _error(
        ErrorCode.INVALID_IDN, f"{_echo(label)} can't be used in a domain name: {reason}."
    )


def _describe_char(ch: str) -> str:
    """Show a character safely: itself if visible, plus its code point if not plain ASCII."""
    if ch.isascii() and ch.isprintable() and not ch.isspace():
        return f"'{ch}'"
    if ch.isprintable() and not ch.isspace():
        return f"'{ch}' ({_char_code(ch)})"
    return _char_code(ch)


def _char_code(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X} {name}" if name else f"U+{ord(ch):04X}"


def _echo(text: str) -> str:
    """Quote text from the input for a message, shortened so a message stays readable."""
    if len(text) > _MAX_ECHO_CHARS:
        text = text[: _MAX_ECHO_CHARS - 1] + "…"
    # Invisible characters (such as joiners) are spelled out so the customer can find them.
    shown = "".join(ch if ch.isprintable() else f"[U+{ord(ch):04X}]" for ch in text)
    return f"'{shown}'"
