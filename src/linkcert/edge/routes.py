"""What the edge answers: tracked links, the open pixel, ACME HTTP-01 challenges, health.

`Router.route` answers synchronously whenever it can (everything but ACME challenges, which
need a store read): a tracked link is verified from the token alone and its click is queued
without waiting for the sink.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from linkcert.edge import responses
from linkcert.edge.challenges import ChallengeBook
from linkcert.edge.counters import EdgeCounters
from linkcert.edge.responses import Response
from linkcert.tracking import (
    Click,
    ClickRecorder,
    InvalidToken,
    TrackedKind,
    TrackedLink,
    TrackingKeys,
    read_token,
)
from linkcert.tracking.machines import AgentMatcher, MachinePolicy
from linkcert.tracking.repeats import RepeatLimiter
from linkcert.tracking.spool import EventSpool, SpoolFull, link_part

logger = logging.getLogger(__name__)

ChallengeLookup = Callable[[str], Awaitable[str | None]]
"""Returns the key authorization for an HTTP-01 token, or None when there is no such token."""

LinkEpoch = Callable[[str], int | None]
"""The link epoch of a host the edge serves, or None for a host it does not serve."""

ChallengeSource = ChallengeBook | ChallengeLookup
"""Where challenge answers come from: a ChallengeBook (memory first, the product's way) or a
lookup called for every token."""

RouteResult = Response | Coroutine[Any, Any, Response]

_CLICK_PREFIX = CLICK_PREFIX = b"/c/"
_OPEN_PREFIX = OPEN_PREFIX = b"/o/"
_CHALLENGE_PREFIX = CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"
_HEALTH_PATH = HEALTH_PATH = b"/healthz"
_READ_METHODS = (b"GET", b"HEAD")
# ACME tokens are base64url; anything else cannot be one, and is not worth a store read.
_ACME_TOKEN = re.compile(rb"[A-Za-z0-9_-]{1,255}")
_MAX_KEY_AUTHORIZATION_CHARS = 1024
# Verified tokens kept per edge process. A campaign sends the same link to many recipients, so
# the clicks of a send come back with a few tokens many times over: remembering the answer
# skips the base64 and HMAC work (about a quarter of a click's time in the edge). Each entry
# is at most a few KiB (a token and its destination, both bounded); the oldest goes first.
VERIFIED_TOKENS_KEPT = 4096
_now = time.time
_UNKNOWN = "\0unknown"  # a user agent not yet looked up


class Router:
    def __init__(
        self,
        *,
        tracking_key: TrackingKeys | bytes,
        recorder: ClickRecorder,
        challenge_lookup: ChallengeSource,
        challenge_timeout: float,
        counters: EdgeCounters,
        link_epoch: LinkEpoch,
        repeats: RepeatLimiter | None = None,
        machines: MachinePolicy | None = None,
        record: bool = True,
        spool: EventSpool | None = None,
    ) -> None:
        """Clicks and opens go to `spool` when given (appended before the answer), else to
        `recorder`."""
        self._keys = TrackingKeys.of(tracking_key)
        self._link_epoch = link_epoch
        self._repeats = repeats
        self._machines = machines or MachinePolicy(agents=AgentMatcher())
        self._machine_reason = self._machines.reason
        agents = self._machines.agents
        self._known_agents: dict[bytes, str | None] = agents.known if agents is not None else {}
        self._soon_after_mint = self._machines.soon_after_mint
        self._record = record
        self._recorder = recorder
        self._spool = spool
        self._spool_failed_at = float("-inf")
        self._challenge_lookup = challenge_lookup
        self._challenge_timeout = challenge_timeout
        self._counters = counters
        # (host, token) → what read_token returned, the redirect it makes and the link's part
        # of a spooled event. Only valid tokens are kept, so a flood of forged ones only costs
        # their own verification.
        self._verified: dict[tuple[str, bytes], tuple[TrackedLink, Response, bytes]] = {}

    def route(
        self,
        method: bytes,
        target: bytes,
        host: str | None,
        tls_name: str | None,
        client: str | None = None,
        user_agent: bytes | None = None,
        peer: str | None = None,
    ) -> RouteResult:
        """Answer one request.

        `host` is the request's host name (lowercase, no port) or None; `tls_name` is the SNI
        name on HTTPS and None on plain HTTP. `target` is the raw request target. `client` is
        the client's address as the edge counts it (see http.address_key), or None. `peer`
        (the client's address itself) and `user_agent` (the header) go into click and open
        events.
        """
        if not target.startswith(b"/"):
            target, host = _split_absolute_form(target, host)
            if not target:
                return responses.BAD_REQUEST
        query = target.find(b"?")
        path = target if query < 0 else target[:query]

        if path.startswith(_CLICK_PREFIX) or path.startswith(_OPEN_PREFIX):
            known = True
        else:
            known = path.startswith(_CHALLENGE_PREFIX) or path == _HEALTH_PATH
            if not known:
                return responses.NOT_FOUND
        if method not in _READ_METHODS:
            return responses.METHOD_NOT_ALLOWED
        if tls_name is not None and host is not None and host != tls_name:
            return responses.MISDIRECTED

        if path.startswith(_CLICK_PREFIX):
            return self._tracked(path[3:], host, method, client, user_agent, peer, False)
        if path.startswith(_OPEN_PREFIX):
            return self._tracked(path[3:], host, method, client, user_agent, peer, True)
        if path == _HEALTH_PATH:
            return responses.HEALTHY
        token = path[len(_CHALLENGE_PREFIX) :]
        if not _ACME_TOKEN.fullmatch(token):
            return responses.NOT_FOUND
        source = self._challenge_lookup
        if not isinstance(source, ChallengeBook):
            return self._challenge(source(token.decode("ascii")))
        found = source.answer(host, token.decode("ascii"))
        if found is None:
            self._counters.challenges_unknown += 1
            return responses.NOT_FOUND
        if isinstance(found, str):
            return self._key_authorization(found)
        return self._challenge(found)

    def _tracked(
        self,
        token: bytes,
        host: str | None,
        method: bytes,
        client: str | None,
        user_agent: bytes | None,
        peer: str | None,
        is_open: bool,
    ) -> Response:
        if host is None:
            return responses.MISSING_HOST
        try:
            link, redirect, part = self._verify(host, token)
        except InvalidToken as exc:
            if exc.reason == "unserved":
                self._counters.unserved_hosts += 1
                return responses.LINK_NOT_VALID
            self._counters.invalid_tokens += 1
            if exc.reason == "key":
                self._counters.retired_key_tokens += 1
            return responses.LINK_NOT_VALID
        # Machine requests (HEAD, scanners, too soon after minting) are answered and recorded
        # like the others, marked with why; past the repeat limit, one client address
        # following one link again is answered and not recorded.
        repeats = self._repeats
        if not self._record:
            pass
        elif (
            repeats is None
            or client is None
            or repeats.allow((client, host, token, is_open, method == b"HEAD"))
        ):
            spool = self._spool
            counters = self._counters
            if spool is not None:
                at = _now()
                # MachinePolicy.reason, with its usual case (a user agent seen before) inline.
                if method == b"HEAD":
                    machine: str | None = "head"
                else:
                    machine = self._known_agents.get(user_agent, _UNKNOWN) if user_agent else None
                    minted = link.minted_at
                    if machine is _UNKNOWN:
                        machine = self._machine_reason(method, user_agent, minted, at)
                    elif (
                        machine is None
                        and minted is not None
                        and 0 <= at - minted < self._soon_after_mint
                    ):
                        machine = "soon_after_mint"
                try:
                    spool.append(part, at, is_open, peer or client, user_agent, machine)
                    recorded = True
                except SpoolFull as exc:
                    recorded = False
                    self._spool_failed(exc)
            else:
                now = datetime.now(UTC)
                machine = self._machines.reason(method, user_agent, link.minted_at, now.timestamp())
                kind: TrackedKind = "open" if is_open else "click"
                recorded = self._recorder.record(
                    Click(host, link.link_id, kind, now, link, peer or client, user_agent, machine)
                )
            if not recorded:
                counters.clicks_dropped += 1
            else:
                if machine is not None:
                    counters.machine_recorded += 1
                if is_open:
                    counters.opens_recorded += 1
                else:
                    counters.clicks_recorded += 1
        else:
            self._counters.click_repeats_not_recorded += 1
        if is_open:
            return responses.OPEN_PIXEL
        return redirect

    def _spool_failed(self, exc: SpoolFull) -> None:
        now = time.monotonic()
        if now - self._spool_failed_at >= 10.0:
            self._spool_failed_at = now
            logger.error("cannot spool click and open events: %s; answering without them", exc)

    def _verify(self, host: str, token: bytes) -> tuple[TrackedLink, Response, bytes]:
        """The link a token stands for on `host`, and its redirect; raises InvalidToken.

        Only names the edge serves (proven, not deleted or released) answer links, on HTTP as
        on HTTPS ("unserved"); a token minted in an earlier epoch of the name, before it was
        deleted, released or changed owner, is refused for good ("epoch").
        """
        epoch = self._link_epoch(host)
        if epoch is None:
            raise InvalidToken("unserved")
        verified = self._verified.get((host, token))
        if verified is None:
            link = read_token(self._keys, host, token.decode("latin-1"))
            part = link_part(host, link) if self._spool is not None else b""
            verified = (link, responses.redirect(link.destination.encode("ascii")), part)
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                del self._verified[next(iter(self._verified))]
            self._verified[host, token] = verified
        if verified[0].epoch != epoch:
            raise InvalidToken("epoch")
        return verified

    def serves(self, host: str) -> bool:
        """Whether the edge serves `host` (lowercase, no port): a proven name, not deleted or
        released. Tracked links are answered, and proxy mode relays requests, only for those."""
        return self._link_epoch(host) is not None

    def has_valid_token(self, host: str, token: bytes) -> bool:
        """Whether `token` (after `/c/` or `/o/`) is a valid link for `host`, as `_tracked`
        would answer it: what `both` mode answers itself rather than relaying."""
        try:
            self._verify(host, token)
        except InvalidToken:
            return False
        return True

    async def _challenge(self, pending: Awaitable[str | None]) -> Response:
        try:
            async with asyncio.timeout(self._challenge_timeout):
                key_authorization = await pending
        except Exception as exc:
            self._counters.challenge_lookup_failures += 1
            logger.error(
                "ACME challenge lookup failed (%s: %s)",
                type(exc).__name__,
                exc,
                extra={"error": type(exc).__name__},
            )
            return responses.UNAVAILABLE
        if key_authorization is None:
            return responses.NOT_FOUND
        return self._key_authorization(key_authorization)

    def _key_authorization(self, key_authorization: str) -> Response:
        if (
            not key_authorization.isascii()
            or not key_authorization.isprintable()
            or len(key_authorization) > _MAX_KEY_AUTHORIZATION_CHARS
        ):
            self._counters.challenge_lookup_failures += 1
            logger.error("ACME challenge lookup returned something that is not a key authorization")
            return responses.INTERNAL_ERROR
        self._counters.challenges_served += 1
        return responses.key_authorization(key_authorization.encode("ascii"))


def proxy_target(target: bytes, host: bytes | None) -> tuple[bytes, bytes | None, bytes] | None:
    """For relaying: the request target to send, the Host to send and the path, or None when
    the target is not one an origin server takes.

    An absolute-form target (`http://host/path`, as sent to proxies) becomes origin-form, and
    its authority wins over the Host header, as HTTP/1.1 says.
    """
    if target.startswith(b"/"):
        query = target.find(b"?")
        return target, host, target if query < 0 else target[:query]
    if target == b"*":
        return target, host, target
    lowered = target[:8].lower()
    if lowered.startswith(b"http://"):
        rest = target[7:]
    elif lowered.startswith(b"https://"):
        rest = target[8:]
    else:
        return None
    end = len(rest)
    for stop in (b"/", b"?"):
        found = rest.find(stop)
        if 0 <= found < end:
            end = found
    authority, remainder = rest[:end], rest[end:]
    if not authority or b"@" in authority:
        return None
    if not remainder.startswith(b"/"):
        remainder = b"/" + remainder
    query = remainder.find(b"?")
    return remainder, authority, remainder if query < 0 else remainder[:query]


def _split_absolute_form(target: bytes, host: str | None) -> tuple[bytes, str | None]:
    """`http://host/path` as sent to proxies: HTTP/1.1 says the host in it wins over Host."""
    lowered = target[:8].lower()
    if lowered.startswith(b"http://"):
        rest = target[7:]
    elif lowered.startswith(b"https://"):
        rest = target[8:]
    else:
        return b"", host
    slash = rest.find(b"/")
    authority, path = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
    return path, host_from_header(authority)


def host_from_header(value: bytes) -> str | None:
    """The host name of a Host header: lowercase, without port or trailing dot; None if empty."""
    value = value.strip()
    if value.startswith(b"["):
        end = value.find(b"]")
        host = value[: end + 1] if end > 0 else value
    else:
        colon = value.rfind(b":")
        host = value if colon < 0 else value[:colon]
    if host.endswith(b"."):
        host = host[:-1]
    if not host:
        return None
    return host.lower().decode("latin-1")
