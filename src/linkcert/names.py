"""Domain names: normalization and validation (interface; the full rules land with issue 2)."""

from __future__ import annotations

from dataclasses import dataclass


class DomainNameError(ValueError):
    """A domain name that linkcert will not accept, with a stable code and a plain message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NamePolicy:
    """What the platform accepts beyond the public rules."""

    allow_test_domains: bool = False
    platform_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainName:
    """A validated name: ASCII (A-label) form, Unicode form, and its registrable domain."""

    ascii: str
    unicode: str
    registrable: str


def validate(name: str, policy: NamePolicy | None = None) -> DomainName:
    """Normalize and validate `name`, raising DomainNameError with the rule it breaks."""
    raise NotImplementedError
