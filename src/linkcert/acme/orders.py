"""Plain records of an order and its HTTP-01 challenges.

The worker stores these between steps (as JSON) so that a restart resumes an order instead of
starting a new one: every field is a string, a tuple of strings, a status or a time, and
`to_json`/`from_json` round-trip exactly.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CHALLENGE_PATH_PREFIX = "/.well-known/acme-challenge/"


class AcmeStatus(StrEnum):
    """Statuses of RFC 8555 objects (orders, authorizations, challenges)."""

    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class OrderInfo:
    """One order as the CA last described it."""

    url: str
    status: AcmeStatus
    identifiers: tuple[str, ...]
    authorization_urls: tuple[str, ...]
    finalize_url: str
    certificate_url: str | None = None
    expires: datetime.datetime | None = None
    error: str | None = None  # the CA's explanation when the order is invalid

    @property
    def domain(self) -> str:
        """The order's first (for linkcert, only) name."""
        return self.identifiers[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "status": self.status.value,
            "identifiers": list(self.identifiers),
            "authorization_urls": list(self.authorization_urls),
            "finalize_url": self.finalize_url,
            "certificate_url": self.certificate_url,
            "expires": self.expires.isoformat() if self.expires else None,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OrderInfo:
        expires = data.get("expires")
        return cls(
            url=str(data["url"]),
            status=AcmeStatus(data["status"]),
            identifiers=tuple(str(name) for name in data["identifiers"]),
            authorization_urls=tuple(str(url) for url in data["authorization_urls"]),
            finalize_url=str(data["finalize_url"]),
            certificate_url=data.get("certificate_url"),
            expires=datetime.datetime.fromisoformat(expires) if expires else None,
            error=data.get("error"),
        )


@dataclass(frozen=True)
class Http01Challenge:
    """What the edge must serve for one name, and where the CA tracks it.

    Serve `key_authorization` (as text/plain) at `http://<domain>/.well-known/acme-challenge/
    <token>`, then call `AcmeClient.answer`.
    """

    domain: str
    token: str
    key_authorization: str
    url: str
    authorization_url: str
    authorization_status: AcmeStatus
    status: AcmeStatus

    @property
    def path(self) -> str:
        return CHALLENGE_PATH_PREFIX + self.token

    @property
    def needs_answer(self) -> bool:
        """False when the CA already validated the name (or is validating it)."""
        return self.authorization_status is AcmeStatus.PENDING and self.status is AcmeStatus.PENDING

    def to_json(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "token": self.token,
            "key_authorization": self.key_authorization,
            "url": self.url,
            "authorization_url": self.authorization_url,
            "authorization_status": self.authorization_status.value,
            "status": self.status.value,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Http01Challenge:
        return cls(
            domain=str(data["domain"]),
            token=str(data["token"]),
            key_authorization=str(data["key_authorization"]),
            url=str(data["url"]),
            authorization_url=str(data["authorization_url"]),
            authorization_status=AcmeStatus(data["authorization_status"]),
            status=AcmeStatus(data["status"]),
        )


@dataclass(frozen=True)
class Dns01Challenge:
    """What DNS must hold for one name: a TXT record `_acme-challenge.<domain>` (here reached
    through the customer's delegation) with `validation`, then `AcmeClient.answer`."""

    domain: str
    token: str
    validation: str  # the TXT value: base64url(SHA-256(key authorization))
    url: str
    authorization_url: str
    authorization_status: AcmeStatus
    status: AcmeStatus

    @property
    def needs_answer(self) -> bool:
        """False when the CA already validated the name (or is validating it)."""
        return self.authorization_status is AcmeStatus.PENDING and self.status is AcmeStatus.PENDING


@dataclass(frozen=True)
class RenewalWindow:
    """When the CA suggests renewing a certificate (RFC 9773, ACME Renewal Information).

    Renew at a random time between `start` and `end`; ask again after `check_again_after`
    seconds (the CA's Retry-After) in case the window moves, e.g. after a mass revocation.
    """

    start: datetime.datetime
    end: datetime.datetime
    explanation_url: str | None = None
    check_again_after: float | None = None
