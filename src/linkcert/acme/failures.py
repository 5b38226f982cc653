"""Turning what the acme library and requests raise into `linkcert.acme.errors`.

The library raises `messages.Error` (a problem document from the CA), its own `errors.*`, and
lets `requests` exceptions through. None of them says whether to retry, and their text can be
long or technical; here each becomes one of our errors with a message that names the step,
what went wrong and what to do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests
from acme import errors as acme_errors
from acme import messages
from josepy.errors import DeserializationError
from requests.exceptions import ConnectTimeout
from urllib3.exceptions import ConnectTimeoutError

from linkcert.acme.errors import (
    AcmeError,
    AcmeRateLimited,
    AcmeRejected,
    AcmeUnavailable,
)
from linkcert.acme.network import RetryingNetwork

_MAX_DETAIL = 500

_HINTS = {
    "externalAccountRequired": (
        "the CA requires External Account Binding: set eab_kid and eab_hmac_key from the CA"
    ),
    "unauthorized": "the CA does not allow this request for this account",
    "accountDoesNotExist": "the account is unknown to the CA: register it again",
    "badCSR": "the certificate request was not accepted: check the key type and the name",
    "rejectedIdentifier": "the CA will not issue for this name",
    "caa": "a CAA record forbids the CA from issuing for this name",
    "invalidContact": "the contact email is not accepted: fix contact_email",
    "unsupportedContact": "the contact email is not accepted: fix contact_email",
    "userActionRequired": "the CA asks for an action on its website (e.g. new terms of service)",
}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def plain(text: str | None) -> str:
    """One line of at most _MAX_DETAIL characters (a CA's detail can span lines)."""
    if not text:
        return ""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def problem_detail(problem: messages.Error) -> str:
    """The most specific human text of a problem document, with its subproblems."""
    text = plain(problem.detail or problem.title or problem.description or str(problem.typ))
    for sub in problem.subproblems or ():
        name = sub.identifier.value if sub.identifier is not None else ""
        text += f"; {name}: {plain(sub.detail or sub.title or str(sub.typ))}"
    return plain(text)


def problem_code(problem: messages.Error) -> str:
    return problem.code or str(problem.typ)


def translate(
    error: Exception,
    action: str,
    network: RetryingNetwork,
    ca_url: str,
    hints: Mapping[str, str] | None = None,
) -> AcmeError:
    """The AcmeError that tells the caller what `error`, raised while doing `action`, means.

    `hints` add or replace advice by ACME error code for this step.
    """
    if isinstance(error, AcmeError):
        return error
    origin = origin_of(ca_url)
    status = network.last_response.status_code if network.last_response is not None else None
    retry_after = network.last_retry_after()

    if isinstance(error, messages.Error):
        code = problem_code(error)
        detail = problem_detail(error)
        if code == "rateLimited":
            wait = f"wait {retry_after:.0f} s" if retry_after is not None else "wait"
            return AcmeRateLimited(
                f"{action}: the CA's rate limit was reached ({detail}); {wait} before trying again",
                detail=detail,
                code=code,
                retry_after=retry_after,
            )
        if code in ("badNonce", "serverInternal") or (status is not None and status >= 500):
            return AcmeUnavailable(
                f"{action}: the CA failed on its side ({detail}); try again later",
                detail=detail,
                code=code,
                retry_after=retry_after,
            )
        hint = (hints or {}).get(code) or _HINTS.get(code)
        message = f"{action}: the CA refused: {detail}"
        return AcmeRejected(f"{message} ({hint})" if hint else message, detail=detail, code=code)

    if isinstance(error, requests.exceptions.SSLError):
        return AcmeUnavailable(
            f"{action}: the TLS certificate of {origin} could not be verified; "
            "check ca_bundle in the ACME settings"
        )
    if isinstance(error, requests.exceptions.Timeout):
        return AcmeUnavailable(f"{action}: {origin} did not answer in time; try again later")
    if isinstance(error, requests.exceptions.ConnectionError):
        return AcmeUnavailable(
            f"{action}: could not connect to {origin} ({_connection_reason(error)}); "
            "try again later"
        )
    if isinstance(error, requests.exceptions.InvalidJSONError):
        return _not_acme(action, origin)
    if isinstance(error, requests.exceptions.RequestException):
        return AcmeUnavailable(f"{action}: the request to {origin} failed; try again later")
    if isinstance(error, acme_errors.ConflictError):
        return AcmeRejected(f"{action}: the CA reported a conflict with an existing resource")
    if isinstance(error, acme_errors.NonceError):
        return AcmeUnavailable(f"{action}: the CA sent no usable nonce; try again later")
    if isinstance(error, acme_errors.ClientError) and status is not None:
        if status >= 500:
            return AcmeUnavailable(
                f"{action}: the CA failed on its side (HTTP {status}); try again later",
                retry_after=retry_after,
            )
        if status == 429:
            return AcmeRateLimited(
                f"{action}: the CA is rate limiting (HTTP 429); try again later",
                retry_after=retry_after,
            )
        if status < 400:
            return _not_acme(action, origin)
        return AcmeRejected(f"{action}: the CA answered HTTP {status} without an explanation")
    if isinstance(error, DeserializationError | ValueError | KeyError):
        return _not_acme(action, origin)
    return AcmeUnavailable(f"{action}: unexpected failure ({type(error).__name__})")


def _not_acme(action: str, origin: str) -> AcmeUnavailable:
    # The server answered with something that is not the ACME object expected.
    return AcmeUnavailable(
        f"{action}: {origin} sent an answer that is not valid ACME; "
        "check directory_url, or try again later"
    )


def _connection_reason(error: requests.exceptions.ConnectionError) -> str:
    text = str(error).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text:
        return "host name not found"
    if "temporary failure in name resolution" in text:
        return "host name lookup failed"
    if "reset" in text:
        return "connection reset"
    if "unreachable" in text:
        return "network unreachable"
    return "connection failed"


def never_reached_the_ca(error: BaseException) -> bool:
    """Whether a failed request never got to the CA: no connection could be made.

    The connection error may follow an earlier try of the same request that did reach the
    CA and timed out while reading; such an order is then counted by the CA and not by us,
    which the CA's own `rateLimited` answer (honoured by the worker) still covers.
    """
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        # requests wraps urllib3's MaxRetryError, whose `reason` says why the connection failed;
        # ConnectTimeoutError covers refused connections and failed name lookups too.
        if isinstance(current, ConnectTimeoutError | ConnectTimeout):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        if current.__cause__ is not None:
            pending.append(current.__cause__)
    return False
