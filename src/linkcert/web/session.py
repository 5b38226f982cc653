"""Signed browser sessions for the pages, and the CSRF tokens that go with them.

A person logs in with an API token. The cookie then holds no token: it holds the token's id,
an expiry and a CSRF secret, signed with a key derived from the master key. Each request looks
the token up again, so revoking the token ends its sessions at once, and a stolen cookie is
worth at most SESSION_LIFETIME, never a token that works against the API.

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
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from linkcert.auth import Principal
from linkcert.config import Settings
from linkcert.keys import MasterKeyError, MasterKeys
from linkcert.store import ApiToken, Store

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
            keys = MasterKeys.parse(settings.master_key_text())
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
    token_id: int
    expires: int
    csrf: str


def new_session(token_id: int, now: float | None = None) -> WebSession:
    issued = int(now if now is not None else time.time())
    return WebSession(token_id, issued + SESSION_LIFETIME_SECONDS, secrets.token_urlsafe(24))


def seal_session(signer: SessionSigner, session: WebSession) -> str:
    return signer.seal({"t": session.token_id, "e": session.expires, "c": session.csrf})


def open_session(
    signer: SessionSigner, sealed: str | None, now: float | None = None
) -> WebSession | None:
    payload = signer.open(sealed)
    if payload is None:
        return None
    token_id, expires, csrf = payload.get("t"), payload.get("e"), payload.get("c")
    if not isinstance(token_id, int) or not isinstance(expires, int) or not isinstance(csrf, str):
        return None
    if expires <= (now if now is not None else time.time()):
        return None
    return WebSession(token_id, expires, csrf)


def principal_for(store: Store, session: WebSession) -> Principal | None:
    """Who the session acts for, while its token exists and is not revoked."""
    with store.session() as db:
        row = db.scalar(select(ApiToken).where(ApiToken.id == session.token_id))
        if row is None or row.revoked_at is not None:
            return None
        return Principal(
            account_id=row.account_id,
            is_operator=row.account_id is None,
            token_id=row.id,
            token_name=row.name,
        )


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
