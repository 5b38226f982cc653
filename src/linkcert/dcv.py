"""Writing DNS-01 answers in the platform's delegation zone (`dcv_zone`).

A customer delegates the ACME challenge of their name with
`_acme-challenge.<name> CNAME <label>.<dcv_zone>` (see `ownership.dcv_label`). To answer a
DNS-01 challenge linkcert adds the TXT record `<label>.<dcv_zone>` on the zone's primary with an
RFC 2136 dynamic update signed with TSIG, waits until every authoritative server of the zone
answers it (asked directly, never through a cache), and removes it once the CA has decided.

Every failure is a `DcvUpdateError` whose message says in plain words what went wrong and
what the operator can do; the TSIG secret never appears in it.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update

from linkcert.config import Settings
from linkcert.hostport import parse_host_port

log = logging.getLogger("linkcert.dcv")

TXT_TTL = 60
_ALGORITHMS = {
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}


class DcvUpdateError(Exception):
    """The TXT record could not be written, removed or seen; the message says why."""


@dataclass(frozen=True)
class DcvSettings:
    """The delegation zone and how to write to it, from settings (`dcv_*`)."""

    zone: str
    update_server: tuple[str, int]
    key_name: str
    algorithm: str
    secret: bytes
    check_servers: tuple[tuple[str, int], ...] = ()
    timeout: float = 5.0
    propagation_timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DcvSettings | None:
        """None when no `dcv_zone` is configured (HTTP-01 only)."""
        if settings.dcv_zone is None:
            return None
        assert settings.dcv_update_server is not None
        assert settings.dcv_tsig_key_name is not None and settings.dcv_tsig_secret is not None
        return cls(
            zone=settings.dcv_zone,
            update_server=parse_host_port(settings.dcv_update_server, default_port=53),
            key_name=settings.dcv_tsig_key_name,
            algorithm=settings.dcv_tsig_algorithm.lower().rstrip("."),
            secret=base64.b64decode(settings.dcv_tsig_secret.get_secret_value()),
            check_servers=tuple(
                parse_host_port(s, default_port=53) for s in settings.dcv_check_servers
            ),
            timeout=settings.dns_timeout,
            propagation_timeout=settings.dcv_propagation_timeout,
        )

    def __repr__(self) -> str:  # the secret stays out of logs and tracebacks
        return f"DcvSettings(zone={self.zone!r}, update_server={self.update_server!r})"


class ZoneUpdater:
    """Adds and removes DNS-01 TXT records in the delegation zone."""

    def __init__(self, settings: DcvSettings) -> None:
        self.settings = settings
        self._origin = dns.name.from_text(settings.zone)
        self._key = dns.tsig.Key(
            dns.name.from_text(settings.key_name),
            settings.secret,
            _ALGORITHMS[settings.algorithm],
        )

    @property
    def zone(self) -> str:
        return self.settings.zone

    def fqdn(self, label: str) -> str:
        return f"{label}.{self.settings.zone}"

    def add_txt(self, label: str, value: str) -> None:
        """Add `<label>.<zone> TXT value` (other values at the name stay)."""
        update = self._update()
        update.add(label, TXT_TTL, "TXT", _quoted(value))
        self._send(update, f"add the TXT record {self.fqdn(label)}")
        log.info("DNS-01 record added at %s", self.fqdn(label))

    def remove_txt(self, label: str, value: str) -> None:
        """Remove that one TXT value (removing one that is not there is no error)."""
        update = self._update()
        update.delete(label, "TXT", _quoted(value))
        self._send(update, f"remove the TXT record {self.fqdn(label)}")
        log.info("DNS-01 record removed at %s", self.fqdn(label))

    def authoritative_servers(self) -> list[tuple[str, int]]:
        """The servers to ask directly: `dcv_check_servers`, or the zone's NS on port 53."""
        if self.settings.check_servers:
            return list(self.settings.check_servers)
        try:
            answer = dns.resolver.resolve(self.settings.zone, "NS", lifetime=self.settings.timeout)
        except dns.exception.DNSException as exc:
            raise DcvUpdateError(
                f"The NS records of the delegation zone {self.zone} could not be read ({exc}), "
                "so linkcert cannot check that its servers publish the DNS-01 record."
            ) from None
        servers: list[tuple[str, int]] = []
        for record in answer:
            host = str(record.target).rstrip(".")
            try:
                for info in socket.getaddrinfo(host, 53, proto=socket.IPPROTO_UDP):
                    address = str(info[4][0])
                    if (address, 53) not in servers:
                        servers.append((address, 53))
            except OSError:
                continue
        if not servers:
            raise DcvUpdateError(f"No server of the delegation zone {self.zone} has an address.")
        return servers

    def published(self, label: str, value: str, server: tuple[str, int]) -> bool:
        """Whether `server` answers the TXT value at `<label>.<zone>` (asked directly)."""
        query = dns.message.make_query(self.fqdn(label), "TXT")
        host, port = server
        try:
            response, _ = dns.query.udp_with_fallback(
                query, host, port=port, timeout=self.settings.timeout
            )
        except (dns.exception.DNSException, OSError):
            return False
        for rrset in response.answer:
            if rrset.rdtype != dns.rdatatype.TXT:
                continue
            for record in rrset:
                if b"".join(record.strings).decode("ascii", "replace") == value:
                    return True
        return False

    def wait_published(self, label: str, value: str) -> None:
        """Return once every authoritative server answers the record; DcvUpdateError after
        `dcv_propagation_timeout` seconds."""
        servers = self.authoritative_servers()
        deadline = time.monotonic() + self.settings.propagation_timeout
        pause = 0.05
        waiting = list(servers)
        while True:
            waiting = [s for s in waiting if not self.published(label, value, s)]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(f"{h}:{p}" for h, p in waiting)
                raise DcvUpdateError(
                    f"The DNS-01 record {self.fqdn(label)} was written, but the delegation "
                    f"zone's server(s) {names} still did not answer it after "
                    f"{self.settings.propagation_timeout:g} s (zone transfers to the "
                    "secondaries may be failing)."
                )
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def _update(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(self._origin, keyring=self._key)

    def _send(self, update: dns.update.UpdateMessage, action: str) -> None:
        host, port = self.settings.update_server
        where = f"{host}:{port}"
        try:
            response = dns.query.tcp(update, host, port=port, timeout=self.settings.timeout)
        except dns.tsig.PeerError as exc:
            raise DcvUpdateError(
                f"Could not {action}: the update server {where} refused linkcert's TSIG key "
                f"{self.settings.key_name!r} ({_tsig_reason(exc)}). Check that "
                "dcv_tsig_key_name, dcv_tsig_algorithm and dcv_tsig_secret match the key "
                "configured on the server."
            ) from None
        except dns.exception.Timeout:
            raise DcvUpdateError(
                f"Could not {action}: the update server {where} did not answer within "
                f"{self.settings.timeout:g} s."
            ) from None
        except (ConnectionError, OSError) as exc:
            raise DcvUpdateError(
                f"Could not {action}: the update server {where} cannot be reached "
                f"({exc.strerror or exc})."
            ) from None
        except dns.exception.DNSException as exc:
            raise DcvUpdateError(
                f"Could not {action}: the update server {where} sent an answer linkcert "
                f"cannot use ({exc})."
            ) from None
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        reason = {
            dns.rcode.REFUSED: "it refused the update (does its ACL allow this TSIG key to "
            "update the zone?)",
            dns.rcode.NOTAUTH: "it is not authoritative for the zone, or did not accept the "
            "TSIG key",
            dns.rcode.NOTZONE: "the zone is not one it serves",
            dns.rcode.SERVFAIL: "it failed to apply the update",
        }.get(rcode, f"it answered {dns.rcode.to_text(rcode)}")
        raise DcvUpdateError(
            f"Could not {action} in {self.zone}: the update server {where} said no: {reason}."
        )


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tsig_reason(exc: dns.tsig.PeerError) -> str:
    if isinstance(exc, dns.tsig.PeerBadKey):
        return "unknown key"
    if isinstance(exc, dns.tsig.PeerBadSignature):
        return "bad signature: the secret differs"
    if isinstance(exc, dns.tsig.PeerBadTime):
        return "clock skew"
    return type(exc).__name__
