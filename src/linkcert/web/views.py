"""What the pages say about a domain: its two states in words, the problems with their fixes,
the certificate's details and what happens next.

The words are decided here, once, for the account page and the console alike; templates only
lay them out. Every sentence is written for a customer who does not know what ACME or CAA is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from linkcert.domains import DomainStatus
from linkcert.states import (
    CERT_STATE_TEXT,
    DCV_STATE_TEXT,
    DNS_STATE_TEXT,
    SECURED_IN_ADVANCE,
    CertState,
    DcvState,
    DnsState,
    FailureClass,
    relative_time,
)

# How a state looks: "ok" green, "working" blue, "action" amber (the customer can fix it),
# "error" red (something failed), "neutral" grey. Each also has its own icon and words, so
# nothing depends on colour alone.
Tone = Literal["ok", "working", "action", "error", "neutral"]

DNS_TONES: dict[str, Tone] = {
    DnsState.PENDING: "working",
    DnsState.OK: "ok",
    DnsState.POINTS_ELSEWHERE: "action",
    DnsState.CAA_BLOCKED: "action",
    DnsState.DNS_ERROR: "error",
    DnsState.MOVED: "action",
    DnsState.NOT_PROVEN: "action",
    DnsState.CLAIMED_ELSEWHERE: "action",
    DnsState.DELEGATED: "ok",
}

CERT_TONES: dict[str, Tone] = {
    CertState.NONE: "neutral",
    CertState.PENDING_VALIDATION: "working",
    CertState.PENDING_ISSUANCE: "working",
    CertState.WAITING_FOR_CA: "working",
    CertState.ACTIVE: "ok",
    CertState.RENEWING: "ok",
    CertState.EXPIRING: "action",
    CertState.EXPIRED: "error",
    CertState.FAILED: "error",
    CertState.REVOKED: "error",
}

SECURED = (CertState.ACTIVE, CertState.RENEWING, CertState.EXPIRING)
IN_PROGRESS = (CertState.PENDING_VALIDATION, CertState.PENDING_ISSUANCE)

# Issuance failures come with a message but no fix of their own: say what to do about each.
FAILURE_FIXES: dict[str, str] = {
    FailureClass.CHALLENGE_FAILED: (
        "Make sure the CNAME record points straight to us: a proxy or CDN in front of the "
        "domain (for example Cloudflare with the orange cloud on) answers instead of us. "
        "We retry automatically."
    ),
    FailureClass.CA_UNAVAILABLE: "Nothing to do: we retry automatically.",
    FailureClass.RATE_LIMITED: (
        "Nothing to do: the certificate authority asked us to wait, and we retry as soon as "
        "it allows."
    ),
    FailureClass.CA_REJECTED: (
        "Contact support and quote the message above; we retry automatically meanwhile."
    ),
    FailureClass.INTERNAL: (
        "Nothing to do: we retry automatically. If it persists, contact support."
    ),
    FailureClass.DCV_UPDATE_FAILED: (
        "Nothing to do on your side: the problem is in our delegation zone, and we retry "
        "automatically."
    ),
}

# A zone-file record inside a fix ("links.example.com. CNAME edge.platform.example.", or a
# CAA record with its quoted value), shown as code the customer can copy.
_RECORD = re.compile(
    r"(?:[A-Za-z0-9*_-]+\.)+ (?:CNAME [A-Za-z0-9.-]+\.?|CAA \d+ [a-z]+ \"[^\"]*\")"
)


@dataclass(frozen=True)
class TextPart:
    text: str
    record: bool = False


@dataclass(frozen=True)
class ProblemView:
    code: str
    message: list[TextPart]
    fix: list[TextPart]


@dataclass(frozen=True)
class Moment:
    """A point in time, written out absolutely and relative to `now`."""

    at: datetime
    now: datetime

    @property
    def iso(self) -> str:
        return self.at.isoformat()

    @property
    def absolute(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} UTC"

    @property
    def relative(self) -> str:
        return relative_time(self.at, self.now)


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    when: Moment | None = None


@dataclass(frozen=True)
class EventView:
    when: Moment
    message: str


@dataclass(frozen=True)
class StatusView:
    domain: str
    unicode_name: str
    headline: str
    tone: Tone
    dns_text: str
    dns_tone: Tone
    cert_text: str
    cert_tone: Tone
    problems: list[ProblemView]
    facts: list[Fact]
    events: list[EventView] = field(default_factory=list)
    warnings: list[ProblemView] = field(default_factory=list)
    can_retry: bool = True
    settled: bool = False  # nothing is expected to change soon: poll slowly

    @property
    def summary(self) -> str:
        """One line for screen readers when something changes."""
        return f"{self.unicode_name}: DNS: {self.dns_text}. Certificate: {self.cert_text}."


def dns_tone(state: str) -> Tone:
    return DNS_TONES.get(state, "neutral")


def cert_tone(state: str) -> Tone:
    return CERT_TONES.get(state, "neutral")


def dns_text(state: str) -> str:
    return _text(DNS_STATE_TEXT, DnsState, state)


def cert_text(state: str) -> str:
    return _text(CERT_STATE_TEXT, CertState, state)


def record_parts(text: str) -> list[TextPart]:
    """`text` split so that the DNS records it names stand apart as code."""
    parts: list[TextPart] = []
    position = 0
    for match in _RECORD.finditer(text):
        if match.start() > position:
            parts.append(TextPart(text[position : match.start()]))
        parts.append(TextPart(match.group(0), record=True))
        position = match.end()
    if position < len(text):
        parts.append(TextPart(text[position:]))
    return parts


def _text(texts: dict[Any, str], kind: type[DnsState] | type[CertState], value: str) -> str:
    try:
        return texts[kind(value)]
    except (ValueError, KeyError):
        return value


def status_view(
    status: DomainStatus,
    now: datetime,
    *,
    events: Sequence[dict[str, Any]] = (),
    source: str | None = None,
) -> StatusView:
    """The page's view of `status`; `source` is the certificate's ("acme", "upload", or
    "upload-private" for an upload trusted only through the private CA bundle)."""
    headline, tone = _headline(status, now)
    problems = [_problem(p, status.failure_class) for p in status.problems]
    shown_events = [
        EventView(Moment(datetime.fromisoformat(e["at"]), now), e["message"] or e["kind"])
        for e in reversed(events)
    ]
    settled = status.cert_state in SECURED and status.dns_state == DnsState.OK
    return StatusView(
        domain=status.domain,
        unicode_name=status.unicode_name,
        headline=headline,
        tone=tone,
        dns_text=dns_text(status.dns_state),
        dns_tone=dns_tone(status.dns_state),
        cert_text=cert_text(status.cert_state),
        cert_tone=cert_tone(status.cert_state),
        problems=problems,
        facts=_facts(status, now, source),
        events=shown_events,
        warnings=[_problem(w, None) for w in status.warnings],
        can_retry=status.wanted,
        settled=settled or not status.wanted,
    )


def _problem(problem: dict[str, str], failure_class: str | None) -> ProblemView:
    fix = problem.get("fix") or ""
    if not fix:
        fix = FAILURE_FIXES.get(problem.get("code", ""), "") or FAILURE_FIXES.get(
            failure_class or "", ""
        )
    message = problem.get("message", "")
    return ProblemView(problem.get("code", ""), record_parts(message), record_parts(fix))


def _headline(status: DomainStatus, now: datetime) -> tuple[str, Tone]:
    dns, cert = status.dns_state, status.cert_state
    expires = f"{status.not_after:%Y-%m-%d}" if status.not_after else "its expiry date"
    if not status.wanted:
        return (
            "No longer in use: this domain is not renewed. Its certificate keeps serving "
            f"links already sent until {expires}.",
            "neutral",
        )
    if cert in SECURED:
        if dns == DnsState.DELEGATED and cert != CertState.EXPIRING:
            return f"{SECURED_IN_ADVANCE}.", "ok"
        if dns == DnsState.MOVED:
            return (
                "Links are still secured, but the domain no longer points to us. Restore the "
                f"DNS record below before the certificate expires on {expires}.",
                "action",
            )
        if dns in (DnsState.POINTS_ELSEWHERE, DnsState.CAA_BLOCKED, DnsState.DNS_ERROR):
            return (
                "Links are secured, but fix the DNS problem below so that the certificate "
                "can be renewed.",
                "action",
            )
        if cert == CertState.EXPIRING:
            return f"Links are secured until {expires}, but renewal is failing.", "action"
        return "HTTPS is on: your tracked links are secured.", "ok"
    if cert in (CertState.EXPIRED, CertState.REVOKED):
        return "Links on this domain are not secured: the certificate is no longer valid.", "error"
    if dns == DnsState.CLAIMED_ELSEWHERE:
        return (
            "This domain's DNS names another account, so it cannot be secured for yours. If "
            "it is yours, change its DNS to the records below.",
            "action",
        )
    if dns in (
        DnsState.POINTS_ELSEWHERE,
        DnsState.CAA_BLOCKED,
        DnsState.MOVED,
        DnsState.NOT_PROVEN,
    ):
        return (
            "Action needed: change your DNS as shown below. We check again automatically.",
            "action",
        )
    if dns == DnsState.DNS_ERROR:
        return "Your DNS servers did not answer properly. We try again automatically.", "error"
    if cert == CertState.WAITING_FOR_CA:
        return status.note(now) or cert_text(cert), "working"
    if cert == CertState.FAILED:
        return "Getting the certificate failed. We retry automatically.", "error"
    if dns == DnsState.PENDING:
        return "Checking your DNS. This takes a few seconds.", "working"
    if dns == DnsState.DELEGATED:
        return (
            "The delegation is in place: getting your certificate before you switch your "
            "CNAME. This usually takes under a minute.",
            "working",
        )
    return "DNS is ready. Getting your certificate: this usually takes under a minute.", "working"


def _facts(status: DomainStatus, now: datetime, source: str | None) -> list[Fact]:
    facts: list[Fact] = []
    if status.issuer:
        issuer = status.issuer
        if source == "upload":
            issuer += " (uploaded certificate)"
        elif source == "upload-private":
            issuer += " (uploaded certificate, private CA: not publicly trusted)"
        facts.append(Fact("Issued by", issuer))
    if status.ca and status.ca_reason and source != "upload":
        # Only when linkcert chose among several CAs: then the customer sees which and why.
        facts.append(Fact("Certificate authority", f"{status.ca} ({status.ca_reason})"))
    if status.dcv_state is not None:
        state = DCV_STATE_TEXT.get(DcvState(status.dcv_state), status.dcv_state)
        facts.append(Fact("Delegation (_acme-challenge)", state))
    if status.challenge and source not in ("upload", "upload-private"):
        how = "DNS-01, through the delegation" if status.challenge == "dns-01" else "HTTP-01"
        facts.append(Fact("Validated by", how))
    if status.not_before:
        facts.append(Fact("Valid from", "", Moment(status.not_before, now)))
    if status.not_after:
        label = "Expired" if status.not_after <= now else "Expires"
        facts.append(Fact(label, "", Moment(status.not_after, now)))
    facts.extend(_next_step(status, now, source))
    return facts


def _next_step(status: DomainStatus, now: datetime, source: str | None) -> list[Fact]:
    if not status.wanted:
        return [Fact("Renewal", "None: the domain is no longer in use")]
    due = status.next_attempt_at
    if status.failure_class is not None and due is not None:
        if status.failure_class in (FailureClass.DNS_NOT_READY, FailureClass.CAA_FORBIDS):
            return [Fact("Next DNS check", "", Moment(max(due, now), now))]
        label = "Next attempt" if status.cert_state == CertState.WAITING_FOR_CA else "Next retry"
        return [Fact(label, "", Moment(max(due, now), now))]
    if status.renew_at is not None and status.cert_state in SECURED:
        # The worker's stored plan, not a recomputation: what the API and the CLI show too.
        when = status.renew_at
        if source in ("upload", "upload-private"):
            # An uploaded certificate is renewed over ACME only if DNS and CAA allow it.
            return [
                Fact("Next renewal", "Automatic attempt", Moment(max(when, now), now)),
                Fact("If that fails", "Upload a new certificate before this one expires"),
            ]
        if when > now:
            value = (
                "Automatic, when the CA suggests" if status.renewal_basis == "ari" else "Automatic"
            )
            return [Fact("Next renewal", value, Moment(when, now))]
        return [Fact("Next renewal", "Automatic, under way")]
    if due is not None and status.cert_state not in IN_PROGRESS:
        return [Fact("Next check", "", Moment(max(due, now), now))]
    return []


def digest(status: DomainStatus, event_count: int) -> str:
    """Changes exactly when what the page shows changes (not when relative times tick)."""
    data = json.dumps([status.to_json(), event_count], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]
