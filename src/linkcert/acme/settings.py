"""How to reach one ACME CA and how patient to be with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from josepy.b64 import b64decode

from linkcert import __version__

LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class AcmeSettings:
    """Where the CA is and how the client talks to it.

    `ca_bundle` is a PEM file of roots to trust for the CA's HTTPS (None: the system's).
    `eab_kid` and `eab_hmac_key` (base64url, as the CA hands it out) are for CAs that require
    External Account Binding; give both or neither.

    Times are in seconds. Each request is tried `network_attempts` times when the connection
    fails or the CA answers 5xx, pausing `retry_pause`, then twice as long, and so on; a request
    the CA rejects for a stale nonce (badNonce) is signed again with a fresh one, up to
    `bad_nonce_attempts` times. Polling waits the CA's Retry-After when it gives one; otherwise
    it waits `poll_first_interval`, then twice as long each time up to `poll_interval` (see
    `poll_pause`). It gives up after `validation_timeout` (authorizations) or
    `issuance_timeout` (finalization) unless the call passes its own timeout.
    """

    directory_url: str = LETS_ENCRYPT_DIRECTORY
    ca_bundle: Path | str | None = None
    contact_email: str | None = None
    eab_kid: str | None = None
    eab_hmac_key: str | None = field(default=None, repr=False)
    user_agent: str = f"linkcert/{__version__}"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    network_attempts: int = 3
    retry_pause: float = 0.5
    bad_nonce_attempts: int = 10
    poll_interval: float = 1.0
    # A CA often validates or issues within a fraction of a second of being asked; a first
    # poll this soon catches that, and the doubling keeps slow CAs at one poll a second.
    poll_first_interval: float = 0.1
    validation_timeout: float = 90.0
    issuance_timeout: float = 90.0

    def __post_init__(self) -> None:
        if (self.eab_kid is None) != (self.eab_hmac_key is None):
            raise ValueError("External Account Binding needs both eab_kid and eab_hmac_key")
        if self.eab_hmac_key is not None:
            try:
                b64decode(self.eab_hmac_key)
            except ValueError:
                raise ValueError("eab_hmac_key must be the base64url text the CA gave") from None
        if self.network_attempts < 1 or self.bad_nonce_attempts < 1:
            raise ValueError("network_attempts and bad_nonce_attempts must be at least 1")
        if not 0 < self.poll_first_interval <= self.poll_interval:
            raise ValueError("poll_first_interval must be above 0 and at most poll_interval")
        if not self.directory_url.startswith(("https://", "http://")):
            raise ValueError(f"directory_url must be an http(s) URL, not {self.directory_url!r}")

    def poll_pause(self, polls_done: int, retry_after: float | None = None) -> float:
        """Seconds to wait before the next poll, after `polls_done` pauses in the same wait.

        The CA's Retry-After, when it sent one, is what the CA asked for and is used as is.
        """
        if retry_after is not None:
            return retry_after
        # The exponent is capped: past that the cap applies anyway, and 2.0**n would overflow.
        doublings = min(max(polls_done, 0), 32)
        return min(self.poll_interval, self.poll_first_interval * 2.0**doublings)

    @property
    def uses_external_account_binding(self) -> bool:
        return self.eab_kid is not None
