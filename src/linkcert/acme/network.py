"""The HTTP layer under the client: the acme library's signer, with bounded retries.

The library's `ClientNetwork` signs each POST with a fresh nonce but retries a badNonce
rejection only once, and not at all a dropped connection or a 5xx. CAs reject nonces on
purpose now and then (Pebble 5% of the time by default), so each request here is signed again
up to `bad_nonce_attempts` times, and a request that could not reach the CA, or that the CA
failed with a 5xx, is sent again after a short pause, up to `network_attempts` times.

A `ClientNetwork` keeps a nonce pool and a requests session: neither is thread-safe, so the
client gives each thread its own `RetryingNetwork`.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from acme import client as acme_client
from acme import errors as acme_errors
from acme import messages
from josepy.jwa import JWASignature
from josepy.jwk import JWK

from linkcert.acme.settings import AcmeSettings

log = logging.getLogger(__name__)


class RetryingNetwork(acme_client.ClientNetwork):
    """`ClientNetwork` that retries what is safe to retry and remembers the last response.

    `last_response` lets the caller read the HTTP status and `Retry-After` of the response an
    error came from; the library's exceptions do not carry them.
    """

    def __init__(self, key: JWK, algorithm: JWASignature, settings: AcmeSettings) -> None:
        super().__init__(key=key, alg=algorithm, user_agent=settings.user_agent)
        if settings.ca_bundle is not None:
            # requests takes either a bool or the path of a PEM bundle for `verify`; the
            # library passes this attribute through as is.
            self.verify_ssl = str(settings.ca_bundle)  # type: ignore[assignment]
        self._timeouts = (settings.connect_timeout, settings.read_timeout)
        self._network_attempts = settings.network_attempts
        self._bad_nonce_attempts = settings.bad_nonce_attempts
        self._retry_pause = settings.retry_pause
        self.last_response: requests.Response | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeouts)
        self.last_response = None
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_response = response
        return response

    def get(
        self, url: str, content_type: str = acme_client.ClientNetwork.JSON_CONTENT_TYPE, **kw: Any
    ) -> requests.Response:
        parent_get = super().get
        return self._with_retries(lambda: parent_get(url, content_type, **kw))

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        # Each try goes through `_post_once`, which takes a fresh nonce and signs again.
        return self._with_retries(lambda: self._post_once(*args, **kwargs))

    def _with_retries(self, send: Callable[[], requests.Response]) -> requests.Response:
        failures = 0
        bad_nonces = 0
        while True:
            try:
                return send()
            except messages.Error as problem:
                if problem.code == "badNonce":
                    bad_nonces += 1
                    if bad_nonces < self._bad_nonce_attempts:
                        log.debug("the CA rejected a nonce; signing the request again")
                        self._keep_nonce_of_last_response()
                        continue
                    raise
                if not self.server_failed():
                    raise
                failures += 1
                if failures >= self._network_attempts:
                    raise
            except acme_errors.ClientError:
                # ConflictError (409) and other non-problem answers land here: only a 5xx is
                # worth another try.
                if not self.server_failed():
                    raise
                failures += 1
                if failures >= self._network_attempts:
                    raise
            except requests.exceptions.SSLError:
                # A certificate the bundle does not trust will not change on its own.
                raise
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
                failures += 1
                if failures >= self._network_attempts:
                    raise
            pause = self._retry_pause * 2 ** (failures - 1)
            log.debug("ACME request failed (%d so far); trying again in %.1f s", failures, pause)
            time.sleep(pause)

    def _keep_nonce_of_last_response(self) -> None:
        # An error response carries a fresh nonce too (RFC 8555 section 6.5); using it saves
        # a newNonce round trip. The library only keeps nonces of successful responses.
        response = self.last_response
        if response is not None and self.REPLAY_NONCE_HEADER in response.headers:
            with contextlib.suppress(acme_errors.NonceError):
                self._add_nonce(response)

    def server_failed(self) -> bool:
        """Whether the last response was a 5xx (the CA's own failure)."""
        return self.last_response is not None and self.last_response.status_code >= 500

    def last_retry_after(self) -> float | None:
        """Seconds the last response asked the client to wait, if it asked."""
        if self.last_response is None:
            return None
        return retry_after_seconds(self.last_response.headers.get("Retry-After"))


def retry_after_seconds(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Parse a Retry-After header (delay in seconds, or an HTTP date) into seconds from now."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - now).total_seconds())
