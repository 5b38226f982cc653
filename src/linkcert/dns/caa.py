"""CAA records (RFC 8659, RFC 8657): what a set of properties allows, for one CA and one name.

Everything here is pure: `caa_lookup` finds the relevant set in DNS, this module judges it. The
judgement is the one a CA must make for a non-wildcard name, and is conservative wherever the
RFCs leave room: whatever we cannot read is taken to forbid, as a CA would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

CRITICAL_FLAG = 128

# Tags a CA understands. A critical property with any other tag forbids issuance; of these, only
# `issue` restricts a non-wildcard name (`issuewild` is for wildcard names, the others never
# restrict certificate issuance).
KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail", "issuevmc"})

# RFC 8659 section 4.2. Labels and parameter tags: letters and digits, inner hyphens allowed.
_LABEL = r"[A-Za-z0-9](?:-*[A-Za-z0-9])*"
_ISSUER_PART = re.compile(rf"[ \t]*(?:({_LABEL}(?:\.{_LABEL})*)[ \t]*)?", re.ASCII)
_PARAMETER = re.compile(rf"({_LABEL})[ \t]*=[ \t]*([\x21-\x3a\x3c-\x7e]*)", re.ASCII)
# RFC 8657 section 4: validationmethods is a comma-separated list of method names.
_METHOD_LIST = re.compile(r"[A-Za-z0-9-]+(?:,[A-Za-z0-9-]+)*", re.ASCII)


class CaaValueError(ValueError):
    """An `issue`/`issuewild` value that does not follow the RFC 8659 grammar."""


@dataclass(frozen=True)
class IssuerValue:
    """A parsed `issue` value: the CA's domain (None for `;`, which names nobody) and parameters.

    Parameter tags are lowercased; each appears once.
    """

    issuer: str | None
    parameters: tuple[tuple[str, str], ...] = ()

    def parameter(self, tag: str) -> str | None:
        for key, value in self.parameters:
            if key == tag:
                return value
        return None


def parse_issuer_value(value: bytes | str) -> IssuerValue:
    """Parse an `issue` or `issuewild` value, raising CaaValueError (and only that) if malformed.

    A malformed value counts as `issue ";"`: it forbids, and names no one.
    """
    if isinstance(value, bytes):
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            raise CaaValueError("the value has bytes outside ASCII") from None
    else:
        text = value
    issuer_part, semicolon, parameter_part = text.partition(";")
    issuer_match = _ISSUER_PART.fullmatch(issuer_part)
    if issuer_match is None:
        raise CaaValueError(f"{issuer_part.strip()!r} is not a domain name")
    issuer = issuer_match.group(1)
    parameters: list[tuple[str, str]] = []
    if semicolon and parameter_part.strip(" \t"):
        for piece in parameter_part.split(";"):
            parameter = _PARAMETER.fullmatch(piece.strip(" \t"))
            if parameter is None:
                raise CaaValueError(f"{piece.strip()!r} is not a parameter of the form key=value")
            key = parameter.group(1).lower()
            if any(key == seen for seen, _ in parameters):
                raise CaaValueError(f"the parameter {key!r} appears twice")
            parameters.append((key, parameter.group(2)))
    return IssuerValue(issuer.lower() if issuer else None, tuple(parameters))


@dataclass(frozen=True)
class CaaProperty:
    """One CAA record as found in DNS, at `owner` (the name that holds it, after any alias)."""

    owner: str
    flags: int
    tag: bytes
    value: bytes

    @property
    def tag_name(self) -> str:
        """The tag, lowercased for comparison (tags are case-insensitive)."""
        return self.tag.decode("ascii", errors="replace").lower()

    @property
    def critical(self) -> bool:
        return bool(self.flags & CRITICAL_FLAG)

    @property
    def understood(self) -> bool:
        return self.tag_name in KNOWN_TAGS

    def to_zone(self) -> str:
        """The record in zone-file form, e.g. `example.com. CAA 0 issue "digicert.com"`."""
        return f'{self.owner}. CAA {self.flags} {_escape(self.tag)} "{_escape(self.value)}"'


def issue_record(owner: str, ca_domain: str, parameters: str = "") -> str:
    """The zone-file line of an `issue` record for `ca_domain` at `owner`."""
    value = f"{ca_domain}; {parameters}" if parameters else ca_domain
    return f'{owner}. CAA 0 issue "{value}"'


class Reason(StrEnum):
    """Why a CAA set permits or forbids one CA."""

    EMPTY_SET = "empty_set"  # no CAA anywhere: any CA may issue
    NO_ISSUE_PROPERTY = "no_issue_property"  # only iodef, issuewild, ...: no restriction
    AUTHORIZED = "authorized"  # an issue property names the CA, its parameters allow us
    CRITICAL_UNKNOWN = "critical_unknown"  # a critical property no CA understands
    NOT_AUTHORIZED = "not_authorized"  # issue properties exist, none names the CA
    ACCOUNT_MISMATCH = "account_mismatch"  # names the CA, for another ACME account
    METHOD_NOT_ALLOWED = "method_not_allowed"  # names the CA, not with our challenge method
    MALFORMED = "malformed"  # meant for the CA, but does not parse (so it forbids)


@dataclass(frozen=True)
class Decision:
    """Whether the set lets one CA issue, why, and which properties decide it."""

    ca_domain: str
    permitted: bool
    reason: Reason
    # When permitted: the property that authorizes (if any). When forbidden: those that block.
    deciding: tuple[CaaProperty, ...] = ()
    note: str = ""


def evaluate(
    properties: tuple[CaaProperty, ...],
    ca_domain: str,
    *,
    account_uri: str | None = None,
    challenge_method: str = "http-01",
) -> Decision:
    """Judge a relevant CAA set for a non-wildcard name, as CA `ca_domain` must (RFC 8659 4.3)."""
    ca = ca_domain.lower()
    if not properties:
        return Decision(ca, True, Reason.EMPTY_SET)
    critical = tuple(p for p in properties if p.critical and not p.understood)
    if critical:
        return Decision(ca, False, Reason.CRITICAL_UNKNOWN, critical)
    issue = tuple(p for p in properties if p.tag_name == "issue")
    if not issue:
        return Decision(ca, True, Reason.NO_ISSUE_PROPERTY)
    near_misses: list[Decision] = []
    for prop in issue:
        refusal = _refusal(prop, ca, account_uri, challenge_method)
        if refusal is None:
            return Decision(ca, True, Reason.AUTHORIZED, (prop,))
        if refusal.reason is not Reason.NOT_AUTHORIZED:
            near_misses.append(refusal)
    if near_misses:
        return near_misses[0]
    return Decision(ca, False, Reason.NOT_AUTHORIZED, issue)


def _refusal(
    prop: CaaProperty, ca: str, account_uri: str | None, challenge_method: str
) -> Decision | None:
    """None if this `issue` property authorizes the CA for us, else why it does not."""
    try:
        value = parse_issuer_value(prop.value)
    except CaaValueError as error:
        if ca.encode() in prop.value.lower():
            return Decision(ca, False, Reason.MALFORMED, (prop,), str(error))
        return Decision(ca, False, Reason.NOT_AUTHORIZED, (prop,))
    if value.issuer != ca:
        return Decision(ca, False, Reason.NOT_AUTHORIZED, (prop,))
    required_account = value.parameter("accounturi")
    if required_account is not None and required_account != account_uri:
        note = (
            f"it allows only the ACME account {required_account}"
            if account_uri is not None
            else f"it allows only the ACME account {required_account}, and ours is not set"
        )
        return Decision(ca, False, Reason.ACCOUNT_MISMATCH, (prop,), note)
    methods = value.parameter("validationmethods")
    if methods is not None:
        if not _METHOD_LIST.fullmatch(methods):
            note = f"validationmethods={methods!r} is not a comma-separated list of methods"
            return Decision(ca, False, Reason.MALFORMED, (prop,), note)
        if challenge_method not in methods.split(","):
            note = f"it allows only the validation methods {methods}, not {challenge_method}"
            return Decision(ca, False, Reason.METHOD_NOT_ALLOWED, (prop,), note)
    return None


def _escape(data: bytes) -> str:
    """Zone-file text for a tag or value: printable ASCII as is, the rest as \\DDD."""
    out = []
    for byte in data:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)
