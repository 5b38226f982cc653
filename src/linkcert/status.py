"""A domain's status as the API, the account page and the command line show it.

Built from the stored rows by pure functions, so that the store's ORM (`linkcert.domains`) and
the lean read path of the short commands (`linkcert.store.reader`) give the same status from
the same rows. Nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from linkcert.ownership import CLAIM_LOST, dcv_label, lost_problem
from linkcert.renewal import renewal_window
from linkcert.states import CertState, DnsState, waiting_note
from linkcert.text import mixed_script_labels, odd_characters

# The key of an order's `info` naming the CA the order went to and why it was chosen.
CA_CHOICE = "ca_choice"


class NotFound(LookupError):
    """No such account or domain (or not one the caller may see)."""


class DomainRow(Protocol):
    """What a status reads of a `domains` row."""

    @property
    def name(self) -> str: ...
    @property
    def unicode_name(self) -> str: ...
    @property
    def account_id(self) -> int | None: ...
    @property
    def dns_state(self) -> str: ...
    @property
    def cert_state(self) -> str: ...
    @property
    def problems(self) -> list[Any]: ...
    @property
    def next_attempt_at(self) -> datetime | None: ...
    @property
    def failure_class(self) -> str | None: ...
    @property
    def wanted(self) -> bool: ...
    @property
    def link_epoch(self) -> int: ...
    @property
    def dcv_state(self) -> str | None: ...
    @property
    def dcv_found(self) -> str | None: ...


class AccountRow(Protocol):
    """What a status reads of an `accounts` row."""

    @property
    def name(self) -> str: ...
    @property
    def dns_label(self) -> str | None: ...
    @property
    def dcv_secret(self) -> str | None: ...


class CertificateRow(Protocol):
    """What a status reads of a `certificates` row."""

    @property
    def issuer(self) -> str: ...
    @property
    def not_before(self) -> datetime: ...
    @property
    def not_after(self) -> datetime: ...
    @property
    def renew_at(self) -> datetime | None: ...
    @property
    def ari_next_check_at(self) -> datetime | None: ...


class ClaimRow(Protocol):
    """What a status reads of a `domain_claims` row."""

    @property
    def state(self) -> str: ...
    @property
    def problems(self) -> list[Any]: ...
    @property
    def expires_at(self) -> datetime: ...


@dataclass(frozen=True)
class DomainStatus:
    """One view of a domain for the API, the account page and the CLI."""

    domain: str
    unicode_name: str
    account: str | None
    dns_state: str
    cert_state: str
    problems: list[dict[str, str]]
    issuer: str | None
    not_before: datetime | None
    not_after: datetime | None
    next_attempt_at: datetime | None
    failure_class: str | None
    wanted: bool
    # The worker's stored plan for the current certificate: when it renews it, and on what
    # basis ("ari": a time the CA suggested, asked again at `ari_next_check_at`; "lifetime":
    # when about a third of the lifetime remains).
    renew_at: datetime | None = None
    renewal_basis: str | None = None
    ari_next_check_at: datetime | None = None
    # The DNS label of the account this status is for (the viewer, or the owner): what the
    # records that prove the name are made of. None for a name nobody owns, seen by an operator.
    dns_label: str | None = field(default=None, repr=False)
    # The name's link epoch: links are minted in it (see docs/tracking-links.md).
    epoch: int = 0
    # Which configured CA issued the current certificate (its name in acme_cas), and why it
    # was chosen ("the CAA records allow only ...", "... was unavailable").
    ca: str | None = None
    ca_reason: str | None = None
    # Delegated DNS-01: this account's delegation label for the name (what its
    # `_acme-challenge` CNAME names in the platform's `dcv_zone`), the delegation's state as
    # last checked (states.DcvState; None when not offered or not checked), and the challenge
    # the current certificate was obtained with.
    dcv_label: str | None = field(default=None, repr=False)
    dcv_state: str | None = None
    dcv_found: str | None = None  # what its `_acme-challenge` CNAME named when last checked
    challenge: str | None = None

    @property
    def secured_in_advance(self) -> bool:
        """Secured through the delegation while the name does not point to us yet."""
        return self.dns_state == DnsState.DELEGATED and self.cert_state in (
            CertState.ACTIVE,
            CertState.RENEWING,
        )

    @property
    def warnings(self) -> list[dict[str, str]]:
        """What the customer should know though nothing stops the domain: a label mixing
        scripts, as look-alikes of other names do (UTS 39)."""
        return name_warnings(self.unicode_name)

    def note(self, now: datetime) -> str | None:
        """For a certificate waiting for the CA: why, and when the next attempt is, in words."""
        return waiting_note(self.cert_state, self.failure_class, self.next_attempt_at, now)

    def to_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "domain": self.domain,
            "unicode_name": self.unicode_name,
            "account": self.account,
            "dns_state": self.dns_state,
            "cert_state": self.cert_state,
            "problems": self.problems,
            "warnings": self.warnings,
            "issuer": self.issuer,
            "not_before": iso(self.not_before),
            "not_after": iso(self.not_after),
            "next_attempt_at": iso(self.next_attempt_at),
            "failure_class": self.failure_class,
            "wanted": self.wanted,
            "renew_at": iso(self.renew_at),
            "renewal_basis": self.renewal_basis,
            "ari_next_check_at": iso(self.ari_next_check_at),
            "epoch": self.epoch,
            "ca": self.ca,
            "ca_reason": self.ca_reason,
            "dcv_state": self.dcv_state,
            "dcv_found": self.dcv_found,
            "challenge": self.challenge,
        }


def name_warnings(unicode_name: str) -> list[dict[str, str]]:
    """A warning for each label of the name that mixes scripts."""
    warnings = []
    for label, scripts in mixed_script_labels(unicode_name):
        odd = odd_characters(label)
        which = f": {', '.join(odd[:3])}" if odd else ""
        warnings.append(
            {
                "code": "mixed_script",
                "message": f"The label \u201c{label}\u201d mixes {' and '.join(scripts)} "
                f"letters, as look-alikes of other names do{which}.",
                "fix": f"Check that {unicode_name} is the name you meant: links on a look-alike "
                "name can be taken for phishing. If it is not, save the right one.",
            }
        )
    return warnings


def owner_status(
    domain: DomainRow,
    account: AccountRow | None,
    cert: CertificateRow | None,
    order_info: Mapping[str, Any] | None,
) -> DomainStatus:
    """The status as the owner (or an operator) sees it: the domain with its owner, its
    current certificate and the stored renewal plan, and the CA the certificate's order went
    to (from the order's `info`)."""
    renew_at, basis = None, None
    choice = dict((order_info or {}).get(CA_CHOICE) or {})
    if cert is not None:
        basis = "ari" if cert.ari_next_check_at is not None else "lifetime"
        # A certificate stored before plans were stored: the worker renews from the window's
        # start (see Lifecycle._needs_certificate).
        renew_at = cert.renew_at or renewal_window(cert.not_before, cert.not_after)[0]
    return DomainStatus(
        domain=domain.name,
        unicode_name=domain.unicode_name,
        account=account.name if account else None,
        dns_state=domain.dns_state,
        cert_state=domain.cert_state,
        problems=list(domain.problems or []),
        issuer=cert.issuer if cert else None,
        not_before=cert.not_before if cert else None,
        not_after=cert.not_after if cert else None,
        next_attempt_at=domain.next_attempt_at,
        failure_class=domain.failure_class,
        wanted=domain.wanted,
        renew_at=renew_at,
        renewal_basis=basis,
        ari_next_check_at=cert.ari_next_check_at if cert else None,
        dns_label=account.dns_label if account else None,
        epoch=domain.link_epoch,
        ca=choice.get("ca"),
        ca_reason=choice.get("reason"),
        dcv_label=_dcv_label(account, domain),
        dcv_state=domain.dcv_state,
        dcv_found=domain.dcv_found,
        challenge=(order_info.get("challenge") or "http-01") if order_info else None,
    )


def _dcv_label(account: AccountRow | None, domain: DomainRow) -> str | None:
    if account is None or not account.dcv_secret:
        return None
    return dcv_label(account.dcv_secret, domain.name)


def claim_status(
    domain: DomainRow, account: AccountRow | None, claim: ClaimRow | None, now: datetime
) -> DomainStatus:
    """The status as an account that does not own the name sees it: its own claim only."""
    live = claim is not None and claim.expires_at > now
    problems: list[dict[str, str]]
    state: str
    if claim is not None and live and claim.state == CLAIM_LOST:
        state, problems = DnsState.CLAIMED_ELSEWHERE, list(claim.problems or [])
    elif claim is not None and live:
        problems = list(claim.problems or [])
        state = DnsState.PENDING if not problems else DnsState.NOT_PROVEN
        if problems and problems[0].get("code") != "ownership_not_proven":
            state = domain.dns_state if domain.account_id is None else DnsState.POINTS_ELSEWHERE
    elif domain.account_id is not None:
        state, problems = DnsState.CLAIMED_ELSEWHERE, [lost_problem(domain.unicode_name)]
    else:
        state = DnsState.NOT_PROVEN
        problems = [
            {
                "code": "claim_expired",
                "message": (
                    f"{domain.unicode_name} is not your account's: DNS did not name the account "
                    "before the claim expired, or the name was released or deleted since."
                ),
                "fix": "Set up the DNS records shown, then save the domain again.",
            }
        ]
    return DomainStatus(
        domain=domain.name,
        unicode_name=domain.unicode_name,
        account=account.name if account else None,
        dns_state=state,
        cert_state="none",
        problems=problems,
        issuer=None,
        not_before=None,
        not_after=None,
        next_attempt_at=domain.next_attempt_at if live else None,
        failure_class=None,
        wanted=live,
        dns_label=account.dns_label if account else None,
        dcv_label=_dcv_label(account, domain),
    )


def event_json(
    at: datetime, kind: str, dns_state: str, cert_state: str, message: str, detail: Any
) -> dict[str, Any]:
    """One event of a domain's timeline as every reader gives it."""
    return {
        "at": at.isoformat(),
        "kind": kind,
        "dns_state": dns_state,
        "cert_state": cert_state,
        "message": message,
        "detail": detail,
    }
