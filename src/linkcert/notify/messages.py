"""The plain-text emails: what happened, what it means, what to do, and what happens next.

Written for the customer's person who set up the DNS record months ago and has forgotten all
about it: no jargon beyond what they must type at their DNS provider, and every fix spelled
out as the record to add or change.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from linkcert.notify.jobs import NotificationView
from linkcert.notify.kinds import NotificationKind, is_platform_failure
from linkcert.states import FailureClass

WIDTH = 72


@dataclass(frozen=True)
class EmailText:
    subject: str
    body: str


def render_email(view: NotificationView, now: datetime) -> EmailText:
    """The subject and body of the email for `view`, with times relative to `now`."""
    facts = _Facts(view, now)
    writer = _WRITERS[NotificationKind(view.kind)]
    subject, sections = writer(facts)
    body = "\n\n".join(section for section in sections if section) + "\n\n" + _footer(view)
    return EmailText(subject, body)


class _Facts:
    """The notification's data with the formatting the writers share."""

    def __init__(self, view: NotificationView, now: datetime) -> None:
        self.view = view
        self.data: Mapping[str, Any] = view.data
        self.now = now
        self.name = str(self.data.get("unicode_name") or view.domain)
        self.not_after = _time(self.data.get("not_after"))
        self.next_attempt = _time(self.data.get("next_attempt_at"))
        problems = self.data.get("problems") or []
        self.problems: list[Mapping[str, Any]] = [p for p in problems if isinstance(p, Mapping)]

    def expiry(self) -> str:
        if self.not_after is None:
            return "its expiry date"
        return _when(self.not_after, self.now)

    def what_went_wrong(self) -> str:
        messages = [str(p["message"]) for p in self.problems if p.get("message")]
        if not messages and self.view.message:
            messages = [self.view.message]
        if not messages:
            return ""
        return "What went wrong:\n" + "\n".join(_bullet(m) for m in messages)

    def customer_can_act(self) -> bool:
        return any(p.get("fix") for p in self.problems) or (
            bool(self.problems) and not is_platform_failure(self.data)
        )

    def what_to_do(self) -> str:
        fixes = [str(p["fix"]) for p in self.problems if p.get("fix")]
        if fixes:
            return "What to do:\n" + "\n".join(_bullet(f) for f in fixes)
        if not self.customer_can_act():
            return _wrap(
                "What to do: nothing on your side. The problem is at the certificate "
                "authority or on our side, and our operators know about it."
            )
        hint = _FAILURE_HINTS.get(str(self.data.get("failure")), _GENERIC_HINT)
        return "What to do:\n" + _bullet(hint.format(name=self.name))

    def next_step(self) -> str:
        if self.next_attempt is None:
            return _wrap("linkcert keeps trying automatically and tells you when it succeeds.")
        again = f"linkcert tries again automatically on {_when(self.next_attempt, self.now)}"
        if not self.customer_can_act():
            return _wrap(again + ".")
        return _wrap(again + "; once the problem is fixed, you do not need to ask for anything.")


def _secured(f: _Facts) -> tuple[str, list[str]]:
    issuer = f.data.get("issuer")
    by = f" from {issuer}" if issuer else ""
    return f"HTTPS is active on {f.name}", [
        _wrap(
            f"{f.name} now has a certificate{by}: links in your emails that use this domain "
            "work over HTTPS."
        ),
        _wrap(
            f"The certificate is valid until {f.expiry()}. linkcert renews it automatically "
            "before then and writes to you if that fails."
        ),
        "What to do: nothing. Keep the DNS record of the domain as it is.",
    ]


def _renewal_failed(f: _Facts) -> tuple[str, list[str]]:
    still_valid = (
        f"The current certificate stays valid until {f.expiry()}: links keep working until "
        "then, and linkcert has time to try again."
        if f.not_after is not None
        else ""
    )
    return f"Renewing the certificate of {f.name} failed", [
        _wrap(f"linkcert could not renew the HTTPS certificate of {f.name}."),
        f.what_went_wrong(),
        _wrap(still_valid),
        f.what_to_do(),
        f.next_step(),
        _wrap(
            "If it keeps failing you will hear from us at most once a day, and again shortly "
            "before the certificate expires."
        ),
    ]


def _expiring(f: _Facts) -> tuple[str, list[str]]:
    left = _span(f.not_after - f.now) if f.not_after else "a few days"
    return f"The certificate of {f.name} expires in {left}", [
        _wrap(
            f"The HTTPS certificate of {f.name} expires on {f.expiry()}, and linkcert has not "
            "been able to renew it."
        ),
        _wrap(
            "If it expires, people who click the links in your emails see a security warning "
            "instead of your page."
        ),
        f.what_went_wrong(),
        f.what_to_do(),
        f.next_step(),
    ]


def _expired(f: _Facts) -> tuple[str, list[str]]:
    return f"The certificate of {f.name} has expired", [
        _wrap(
            f"The HTTPS certificate of {f.name} expired on {f.expiry()}. People who click "
            "links in your emails that use this domain now see a security warning."
        ),
        f.what_went_wrong(),
        f.what_to_do(),
        f.next_step(),
    ]


def _moved(f: _Facts) -> tuple[str, list[str]]:
    until = (
        f", and at the latest until the current certificate expires on {f.expiry()}"
        if f.not_after
        else ""
    )
    return f"{f.name} no longer points to us", [
        _wrap(
            f"The DNS records of {f.name} no longer point to our service, so linkcert cannot "
            f"renew its certificate. Links in emails already sent keep working only while the "
            f"DNS points to us{until}."
        ),
        f.what_went_wrong(),
        f.what_to_do()
        + "\n\n"
        + _wrap(
            "If you moved the domain away on purpose, you need not do anything: linkcert "
            "stops securing it after a while and tells you when it does."
        ),
        f.next_step(),
    ]


def _released(f: _Facts) -> tuple[str, list[str]]:
    ends = (
        f"Links in emails already sent keep working over HTTPS until the certificate expires "
        f"on {f.expiry()}, as long as the DNS still points to us."
        if f.not_after
        else ""
    )
    return f"{f.name} is no longer secured by linkcert", [
        _wrap(
            f"linkcert no longer secures {f.name} and will not renew its certificate. "
            + f.view.message
        ),
        _wrap(ends),
        _wrap(
            f"What to do: if this is a mistake, save {f.name} again as your link tracking "
            "domain; otherwise nothing."
        ),
    ]


def _revoked(f: _Facts) -> tuple[str, list[str]]:
    serial = f.data.get("serial")
    which = f" (serial {serial})" if serial else ""
    reason = f.data.get("reason")
    why = f" Reason: {reason}." if reason else ""
    wanted = bool(f.data.get("wanted", True))
    return f"The certificate of {f.name} was revoked", [
        _wrap(f"The HTTPS certificate of {f.name}{which} was revoked.{why} {f.view.message}"),
        _wrap(
            "What to do: nothing. linkcert requests a new certificate automatically"
            + (f", next on {_when(f.next_attempt, f.now)}." if f.next_attempt else ".")
            if wanted
            else "linkcert no longer secures this domain, so no new certificate is requested."
        ),
    ]


def _brand_requested(f: _Facts) -> tuple[str, list[str]]:
    account = f.view.account_name or "an account"
    return f"Brand link tracking domain requested: {f.name}", [
        _wrap(f"{account} asked for {f.name} as a brand link tracking domain."),
        _wrap(f.view.message),
        _wrap(
            "What to do: provision it on the manual path for brand domains, then tell the "
            "customer which DNS record to add."
        ),
    ]


def _link_events(f: _Facts) -> tuple[str, list[str]]:
    # Sent to accounts' event endpoints only, never by email; written out all the same so that
    # every kind reads as a message wherever one is shown.
    return f"Click and open events on {f.name}", [
        _wrap(f"A batch of click and open events on {f.name}, for the account's endpoints."),
        _wrap(
            "What to do: nothing; the events are also readable through GET /api/v1/events "
            "(see docs/events.md)."
        ),
    ]


_WRITERS = {
    NotificationKind.SECURED: _secured,
    NotificationKind.RENEWAL_FAILED: _renewal_failed,
    NotificationKind.EXPIRING: _expiring,
    NotificationKind.EXPIRED: _expired,
    NotificationKind.MOVED: _moved,
    NotificationKind.RELEASED: _released,
    NotificationKind.REVOKED: _revoked,
    NotificationKind.BRAND_REQUESTED: _brand_requested,
    NotificationKind.LINK_EVENTS: _link_events,
}

_GENERIC_HINT = "Check that the DNS record of {name} still points to us."
_FAILURE_HINTS = {
    FailureClass.DNS_NOT_READY.value: _GENERIC_HINT,
    FailureClass.CAA_FORBIDS.value: (
        "A CAA record of your domain does not allow our certificate authority: add one that "
        "does, or remove the CAA records that block it."
    ),
    FailureClass.CHALLENGE_FAILED.value: (
        "Make sure http://{name}/ reaches us directly: no proxy or CDN in front of it (such as "
        "Cloudflare with the orange cloud on) and no firewall closing port 80."
    ),
    FailureClass.DCV_UPDATE_FAILED.value: (
        "Nothing to do on your side: the record we write for {name}'s delegation could not be "
        "written on our DNS servers; we retry automatically."
    ),
}


def _footer(view: NotificationView) -> str:
    whose = f" of the account {view.account_name}" if view.account_name else ""
    return "-- \n" + _wrap(
        f"An automatic message from linkcert about the link tracking domain {view.domain}"
        f"{whose}. Reference: {view.public_id}."
    )


def _wrap(text: str) -> str:
    return textwrap.fill(text.strip(), WIDTH, break_long_words=False, break_on_hyphens=False)


def _bullet(text: str) -> str:
    # Fixes hold DNS records to copy: they are indented but never broken across lines.
    return "  - " + text.strip()


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _when(at: datetime, now: datetime) -> str:
    stamp = f"{at:%Y-%m-%d %H:%M} UTC"
    if at <= now:
        return stamp
    return f"{stamp} (in {_span(at - now)})"


def _span(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size) if unit != "day" else seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "less than a minute"
