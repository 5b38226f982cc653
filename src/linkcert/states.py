"""The two states of a link tracking domain, kept apart as the customer needs to see them.

The DNS state says whether the customer's DNS lets linkcert secure the name; the certificate
state says where the certificate stands. A certificate can stay `active` while DNS has `moved`:
the current certificate keeps serving links already sent until it expires.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class DnsState(StrEnum):
    PENDING = "pending"  # not checked yet
    OK = "ok"
    POINTS_ELSEWHERE = "points_elsewhere"
    CAA_BLOCKED = "caa_blocked"
    DNS_ERROR = "dns_error"
    MOVED = "moved"  # was ok and secured, no longer reaches the platform
    NOT_PROVEN = "not_proven"  # reaches the platform, but DNS does not name this account
    CLAIMED_ELSEWHERE = "claimed_elsewhere"  # DNS names another account, which owns the name
    # Does not point to us yet, but `_acme-challenge` is delegated to the account: certificates
    # come by DNS-01 before the switch.
    DELEGATED = "delegated"


class CertState(StrEnum):
    NONE = "none"
    PENDING_VALIDATION = "pending_validation"
    PENDING_ISSUANCE = "pending_issuance"
    # The CA is unreachable, failing on its side or asked us to wait: nobody needs to act,
    # linkcert tries again at `next_attempt_at`. `failed` is for what needs a person.
    WAITING_FOR_CA = "waiting_for_ca"
    ACTIVE = "active"
    RENEWING = "renewing"
    EXPIRING = "expiring"
    EXPIRED = "expired"
    FAILED = "failed"
    REVOKED = "revoked"


class FailureClass(StrEnum):
    """Why the last attempt failed; each class has its own retry schedule."""

    DNS_NOT_READY = "dns_not_ready"
    CAA_FORBIDS = "caa_forbids"
    CHALLENGE_FAILED = "challenge_failed"
    CA_UNAVAILABLE = "ca_unavailable"
    RATE_LIMITED = "rate_limited"
    CA_REJECTED = "ca_rejected"
    # The DNS-01 record could not be written in (or seen on) the platform's delegation zone.
    DCV_UPDATE_FAILED = "dcv_update_failed"
    INTERNAL = "internal"


# What a customer reads for each state, in the account page, the API and the CLI.
DNS_STATE_TEXT: dict[DnsState, str] = {
    DnsState.PENDING: "Checking your DNS",
    DnsState.OK: "DNS is set up correctly",
    DnsState.POINTS_ELSEWHERE: "The domain does not point to us yet",
    DnsState.CAA_BLOCKED: "A CAA record does not allow our certificate authority",
    DnsState.DNS_ERROR: "Your DNS servers did not answer properly",
    DnsState.MOVED: "The domain no longer points to us",
    DnsState.NOT_PROVEN: "Your DNS does not name your account yet",
    DnsState.CLAIMED_ELSEWHERE: "The domain's DNS names another account",
    DnsState.DELEGATED: "Certificate checks are delegated to us; the domain does not point to "
    "us yet",
}

# What a secured domain whose traffic has not switched yet reads, wherever its status shows.
SECURED_IN_ADVANCE = "Secured in advance: switch your CNAME when ready"


class DcvState(StrEnum):
    """The `_acme-challenge` delegation of a domain, when the platform offers one."""

    OK = "ok"  # delegated to the owner's label, and CAA lets the CA validate by dns-01
    MISSING = "missing"
    WRONG_TARGET = "wrong_target"  # a CNAME, but not to the owner's label
    CAA_FORBIDS = "caa_forbids"  # delegated, but CAA validationmethods leave out dns-01
    LOOKUP_FAILED = "lookup_failed"


DCV_STATE_TEXT: dict[DcvState, str] = {
    DcvState.OK: "In place: certificates come through it (DNS-01)",
    DcvState.MISSING: "Not set up",
    DcvState.WRONG_TARGET: "Points to the wrong target",
    DcvState.CAA_FORBIDS: "In place, but CAA does not allow DNS-01",
    DcvState.LOOKUP_FAILED: "Could not be read",
}

CERT_STATE_TEXT: dict[CertState, str] = {
    CertState.NONE: "No certificate yet",
    CertState.PENDING_VALIDATION: "Proving control of the domain to the certificate authority",
    CertState.PENDING_ISSUANCE: "Waiting for the certificate authority to issue",
    CertState.WAITING_FOR_CA: "Waiting for the certificate authority, which cannot issue right "
    "now; retrying automatically",
    CertState.ACTIVE: "Secured",
    CertState.RENEWING: "Secured; renewing the certificate",
    CertState.EXPIRING: "Secured, but the certificate expires soon and renewal is failing",
    CertState.EXPIRED: "The certificate has expired",
    CertState.FAILED: "Issuing the certificate failed; retrying automatically",
    CertState.REVOKED: "The certificate was revoked",
}

# Failures on the CA's side that pass by themselves: a certificate without one waits
# (`waiting_for_ca`) rather than fails, until the outage has outlasted this many attempts in a
# row (1 min, 10 min, 100 min: about two hours), when a person should look.
TRANSIENT_CA_FAILURES = (FailureClass.CA_UNAVAILABLE, FailureClass.RATE_LIMITED)
CA_WAIT_ATTEMPTS = 3

_WAIT_REASONS: dict[str, str] = {
    FailureClass.CA_UNAVAILABLE: "The certificate authority is unavailable",
    FailureClass.RATE_LIMITED: "The certificate authority asked us to wait (a rate limit)",
}


def state_after_failure(failure: FailureClass, attempts: int) -> CertState:
    """The certificate state of a domain without a certificate after its `attempts`-th failure
    in a row of class `failure`."""
    if failure == FailureClass.RATE_LIMITED:
        return CertState.WAITING_FOR_CA
    if failure in TRANSIENT_CA_FAILURES and attempts <= CA_WAIT_ATTEMPTS:
        return CertState.WAITING_FOR_CA
    return CertState.FAILED


def relative_time(at: datetime, now: datetime) -> str:
    """`at` in words from `now`: "in 3 minutes", "2 hours ago", "now"."""
    seconds = (at - now).total_seconds()
    future = seconds >= 0
    seconds = abs(seconds)
    if seconds < 5:
        return "now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            count = int(seconds // size)
            words = f"{count} {unit}{'' if count == 1 else 's'}"
            return f"in {words}" if future else f"{words} ago"
    return "now"  # unreachable: seconds >= 5 always matches a unit


def waiting_note(
    cert_state: str, failure_class: str | None, next_attempt_at: datetime | None, now: datetime
) -> str | None:
    """Why a certificate waits for the CA and when linkcert tries again, in words; None unless
    the state is `waiting_for_ca`. The page, the API, the CLI and the console all show it."""
    if cert_state != CertState.WAITING_FOR_CA:
        return None
    reason = _WAIT_REASONS.get(failure_class or "", "")
    reason = reason or "The certificate authority cannot issue right now"
    if next_attempt_at is None:
        return f"{reason}; we try again automatically."
    when = relative_time(next_attempt_at, now)
    moment = "right away" if when == "now" else when
    return f"{reason}; the next attempt is {moment} (at {next_attempt_at:%Y-%m-%d %H:%M:%S} UTC)."


class BrandRequestStatus(StrEnum):
    """Where a request for a brand link tracking domain stands."""

    REQUESTED = "requested"
    APPROVED = "approved"
    UPLOADED = "uploaded"
    REJECTED = "rejected"
