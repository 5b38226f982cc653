"""Signed browser sessions for the pages, and the CSRF tokens that go with them.

A person logs in with an API token. The cookie then holds no token: it holds the random id of
a session stored in the database (`web_sessions`, which keeps only the id's hash, the token's
id, the expiry and the CSRF secret), signed with a key derived from the master key. Each
request looks the session and its token up again, so logging out (which deletes the session)
or revoking the token ends it at once, and a stolen cookie is worth at most SESSION_LIFETIME,
never a token that works against the API.

The cookie is HttpOnly (scripts can't read it), SameSite=Strict (other sites can't make the
browser send it) and Secure when the page is served over HTTPS. Form posts carry the session's
CSRF secret as well, in a hidden field or the X-CSRF-Token header: SameSite alone does not
cover older browsers or a sibling subdomain taken over by someone else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select
from starlette.requests import Request
from starlette.responses import Response

from linkcert.auth import Principal, principal_of
from linkcert.config import Settings
from linkcert.keys import MasterKeyError, MasterKeys
from linkcert.store import ApiToken, Store, utcnow
from linkcert.store import WebSession as WebSessionRow

log = logging.getLogger("linkcert.web")

SESSION_COOKIE = "linkcert_session"
# Before login there is no session to hold a CSRF secret: this cookie holds one for the login
# form alone, so that another site cannot log a visitor in to an account of its choosing.
LOGIN_COOKIE = "linkcert_login"
SESSION_LIFETIME_SECONDS = 8 * 3600
LOGIN_FORM_LIFETIME_SECONDS = 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Seals small JSON payloads with HMAC-SHA256 and opens them again."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("a session key takes at least 32 bytes")
        self._key = key

    @classmethod
    def for_settings(cls, settings: Settings) -> SessionSigner:
        """A key derived from the current master key, so every API process agrees on it.

        Without a master key (an API-only test setup) sessions get a key of this process:
        they then end when it restarts, which is all that is lost.
        """
        try:
            keys = MasterKeys.from_settings(settings)
        except MasterKeyError:
            log.warning("no master key: page sessions end when this process restarts")
            return cls(secrets.token_bytes(32))
        derive = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"linkcert web sessions v1"
        )
        return cls(derive.derive(keys.keys[keys.current_id]))

    def seal(self, payload: dict[str, object]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(body)}"

    def open(self, sealed: str | None) -> dict[str, object] | None:
        """The payload, or None for anything not sealed by this key (or garbled)."""
        if not sealed or sealed.count(".") != 1 or len(sealed) > 4096:
            return None
        body, mac = sealed.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            payload = json.loads(_unb64(body))
        except (ValueError, binascii.Error):
            return None
        return payload if isinstance(payload, dict) else None

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())


@dataclass(frozen=True)
class WebSession:
    id_hash: str
    token_id: int
    expires: datetime
    csrf: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def start_session(
    store: Store, token_id: int, now: datetime | None = None
) -> tuple[str, WebSession]:
    """Store a new session of the token; return the id the cookie carries, and the session.

    Expired sessions are swept here, so the table holds only live ones and recent leftovers.
    """
    issued = now or utcnow()
    session_id = secrets.token_urlsafe(32)
    web = WebSession(
        _hash(session_id),
        token_id,
        issued + timedelta(seconds=SESSION_LIFETIME_SECONDS),
        secrets.token_urlsafe(24),
    )
    with store.session() as db:
        db.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= issued))
        db.add(
            WebSessionRow(
                id_hash=web.id_hash,
                token_id=token_id,
                csrf=web.csrf,
                created_at=issued,
                expires_at=web.expires,
            )
        )
    return session_id, web


def seal_session(signer: SessionSigner, session_id: str) -> str:
    return signer.seal({"s": session_id})


def open_session(
    signer: SessionSigner, store: Store, sealed: str | None, now: datetime | None = None
) -> WebSession | None:
    """The live session the cookie names: signed by us, stored, not ended, not expired."""
    payload = signer.open(sealed)
    if payload is None:
        return None
    session_id = payload.get("s")
    if not isinstance(session_id, str) or not 20 <= len(session_id) <= 100:
        return None
    with store.session() as db:
        row = db.get(WebSessionRow, _hash(session_id))
        if row is None or row.expires_at <= (now or utcnow()):
            return None
        return WebSession(row.id_hash, row.token_id, row.expires_at, row.csrf)


def end_session(store: Store, session: WebSession) -> None:
    """Log out: the session's row goes, so its cookie opens nothing from now on."""
    with store.session() as db:
        db.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == session.id_hash))


def principal_for(store: Store, session: WebSession) -> Principal | None:
    """Who the session acts for, while its token exists and is not revoked."""
    with store.session() as db:
        row = db.scalar(select(ApiToken).where(ApiToken.id == session.token_id))
        if row is None or row.revoked_at is not None:
            return None
        return principal_of(row)


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin.

    Browsers send Origin on every POST, and Sec-Fetch-Site too; a request without either is
    not a browser's form on another site, and the CSRF token still has to match.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
