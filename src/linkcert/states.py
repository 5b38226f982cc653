"""The two states of a link tracking domain, kept apart as the customer needs to see them.

The DNS state says whether the customer's DNS lets linkcert secure the name; the certificate
state says where the certificate stands. A certificate can stay `active` while DNS has `moved`:
the current certificate keeps serving links already sent until it expires.
"""

from __future__ import annotations

from enum import StrEnum


class DnsState(StrEnum):
    PENDING = "pending"  # not checked yet
    OK = "ok"
    POINTS_ELSEWHERE = "points_elsewhere"
    CAA_BLOCKED = "caa_blocked"
    DNS_ERROR = "dns_error"
    MOVED = "moved"  # was ok and secured, no longer reaches the platform


class CertState(StrEnum):
    NONE = "none"
    PENDING_VALIDATION = "pending_validation"
    PENDING_ISSUANCE = "pending_issuance"
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
    INTERNAL = "internal"


# What a customer reads for each state, in the account page, the API and the CLI.
DNS_STATE_TEXT: dict[DnsState, str] = {
    DnsState.PENDING: "Checking your DNS",
    DnsState.OK: "DNS is set up correctly",
    DnsState.POINTS_ELSEWHERE: "The domain does not point to us yet",
    DnsState.CAA_BLOCKED: "A CAA record does not allow our certificate authority",
    DnsState.DNS_ERROR: "Your DNS servers did not answer properly",
    DnsState.MOVED: "The domain no longer points to us",
}

CERT_STATE_TEXT: dict[CertState, str] = {
    CertState.NONE: "No certificate yet",
    CertState.PENDING_VALIDATION: "Proving control of the domain to the certificate authority",
    CertState.PENDING_ISSUANCE: "Waiting for the certificate authority to issue",
    CertState.ACTIVE: "Secured",
    CertState.RENEWING: "Secured; renewing the certificate",
    CertState.EXPIRING: "Secured, but the certificate expires soon and renewal is failing",
    CertState.EXPIRED: "The certificate has expired",
    CertState.FAILED: "Issuing the certificate failed; retrying automatically",
    CertState.REVOKED: "The certificate was revoked",
}


class BrandRequestStatus(StrEnum):
    """Where a request for a brand link tracking domain stands."""

    REQUESTED = "requested"
    APPROVED = "approved"
    UPLOADED = "uploaded"
    REJECTED = "rejected"
