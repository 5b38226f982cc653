"""API tokens: making, revoking and checking the bearer tokens of the REST API.

A token is `lct_` followed by 43 base64url characters (32 random bytes). It is shown once,
when it is made; the store keeps only its SHA-256. A plain hash is enough here: the token is
256 random bits, so there is nothing to guess that a slow hash would protect.

A token belongs to one account, or to no account: then it is an operator token, which may do
everything, including making accounts and other tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from linkcert.domains import NotFound, find_account
from linkcert.store import ApiToken, Store, utcnow
from linkcert.store.faults import classify
from linkcert.store.models import ACCOUNT_TOKEN, OPERATOR_TOKEN
from linkcert.text import check_clean

TOKEN_PREFIX = "lct_"  # noqa: S105  (a marker, not a secret)
TOKEN_PATTERN = re.compile(r"lct_[A-Za-z0-9_-]{43}")
LISTED_PREFIX_CHARS = 8

# Writing last_used_at on every request would turn every read into a write; once a minute is
# precise enough to tell which tokens are still in use.
LAST_USED_PRECISION = timedelta(minutes=1)


class AuthenticationError(Exception):
    """The token is missing, malformed, unknown or revoked; `reason` says which."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: an account (account_id set) or an operator (None)."""

    account_id: int | None
    is_operator: bool
    token_id: int
    token_name: str

    def may_see_account(self, account_id: int) -> bool:
        return self.is_operator or self.account_id == account_id

    @property
    def decider(self) -> str:
        """Who took a decision with this token, as brand requests record it (`decided_by`)."""
        return f"operator token {self.token_id} ({self.token_name})"


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(store: Store, account_ref: str | int | None, name: str) -> tuple[str, ApiToken]:
    """Make a token for the account `account_ref`, or an operator token when it is None.

    Returns the token itself (show it once, it is not kept) and its stored row.
    """
    name = check_clean(name.strip(), "token name")
    if not name or len(name) > 200:
        raise ValueError("a token name takes 1 to 200 characters")
    plain = new_token()
    with store.session() as session:
        account_id = None if account_ref is None else find_account(session, account_ref).id
        row = ApiToken(
            account_id=account_id,
            kind=OPERATOR_TOKEN if account_id is None else ACCOUNT_TOKEN,
            name=name,
            token_hash=hash_token(plain),
            prefix=plain[:LISTED_PREFIX_CHARS],
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
        return plain, row


def revoke_token(store: Store, token_id: int) -> ApiToken:
    """Revoke a token for good. Revoking it again changes nothing."""
    with store.session() as session:
        row = session.get(ApiToken, token_id)
        if row is None:
            raise NotFound(f"no API token with id {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return row


def list_tokens(store: Store, account_ref: str | int | None = None) -> list[ApiToken]:
    """Every token, or those of one account, oldest first."""
    with store.session() as session:
        query = select(ApiToken).order_by(ApiToken.id)
        if account_ref is not None:
            query = query.where(ApiToken.account_id == find_account(session, account_ref).id)
        return list(session.scalars(query).all())


def authenticate(store: Store, plain: str) -> Principal:
    """The principal a token acts for, or AuthenticationError."""
    if not TOKEN_PATTERN.fullmatch(plain):
        raise AuthenticationError(
            "malformed", "That is not a linkcert API token: they look like lct_ and 43 characters."
        )
    digest = hash_token(plain)
    now = utcnow()
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        # The index finds the row; comparing again in constant time keeps the decision itself
        # from depending on how much of the hash matched.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise AuthenticationError("unknown", "This API token is not known.")
        if row.revoked_at is not None:
            raise AuthenticationError(
                "revoked", f"This API token was revoked on {row.revoked_at:%Y-%m-%d}."
            )
        principal = principal_of(row)
        if principal is None:
            raise AuthenticationError("unknown", "This API token is not known.")
        touch = row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION
    if touch:
        _touch(store, row.id, now)
    return principal


def _touch(store: Store, token_id: int, now: datetime) -> None:
    """Note when a token was last used; a database that takes no writes (read-only, full,
    locked) must not turn every read into an error, so then the note is skipped."""
    try:
        with store.session() as session:
            session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
    except DBAPIError as exc:
        if classify(exc) is None:
            raise


def principal_of(row: ApiToken) -> Principal | None:
    """Who a token acts for, by its stated kind; None for a token whose kind and account
    disagree (the database refuses to store one; never read one as an operator's)."""
    if row.kind == OPERATOR_TOKEN and row.account_id is None:
        return Principal(account_id=None, is_operator=True, token_id=row.id, token_name=row.name)
    if row.kind == ACCOUNT_TOKEN and row.account_id is not None:
        return Principal(
            account_id=row.account_id, is_operator=False, token_id=row.id, token_name=row.name
        )
    return None
