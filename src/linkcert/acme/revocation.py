"""Revocation reasons (RFC 5280 CRLReason values that ACME CAs accept)."""

from __future__ import annotations

from enum import IntEnum


class RevocationReason(IntEnum):
    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    # What linkcert sends when a customer removes a domain.
    CESSATION_OF_OPERATION = 5
