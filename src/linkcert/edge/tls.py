"""TLS termination: the listener's context picks each domain's certificate by SNI.

The listener's own context holds no certificate at all. A handshake only completes when the SNI
callback has switched it to the context of a name in the cache, so an unknown name or a client
without SNI gets a fatal alert, never some other domain's certificate.

A name served but whose certificate is not in memory yet (certs.py) cannot wait inside the
callback, which OpenSSL calls synchronously. The callback marks the TLS object with the name
(`LOAD_ATTRIBUTE`) and ends that attempt; the connection (tlssession.py, http.py) then loads the
certificate and replays the ClientHello it kept into a fresh TLS object. Nothing of the failed
attempt reaches the client unless the load fails.
"""

from __future__ import annotations

import logging
import ssl

from linkcert.edge import sslctx, tlsconfig
from linkcert.edge.certs import CertificateCache, CertificateNotLoaded, UnusableCertificate
from linkcert.edge.counters import EdgeCounters

logger = logging.getLogger(__name__)

# Set on an SSLObject whose handshake stopped for want of the named certificate.
LOAD_ATTRIBUTE = "linkcert_certificate_to_load"

# OpenSSL's reason when an SNI callback ends the handshake: already counted by the callback.
_REFUSED_BY_CALLBACK = "CALLBACK_FAILED"
_REASONS_BY_OPENSSL_REASON = {
    "HTTP_REQUEST": "not_tls",
    "WRONG_VERSION_NUMBER": "not_tls",
    "UNSUPPORTED_PROTOCOL": "protocol_version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version",
    "NO_SHARED_CIPHER": "no_shared_cipher",
    "NO_SHARED_GROUPS": "no_shared_cipher",
}


class SniSelector:
    """Owns the listener's SSLContext and its SNI callback."""

    def __init__(
        self,
        certificates: CertificateCache,
        counters: EdgeCounters,
        *,
        session_tickets: bool = False,
    ) -> None:
        self._certificates = certificates
        self._counters = counters
        self._session_tickets = session_tickets
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tlsconfig.configure(self.context, session_tickets=session_tickets)
        self.context.sni_callback = self._select
        self.shared_ticket_keys = False

    def use_ticket_keys(self, keys: bytes | None) -> bool:
        """Issue and accept session tickets sealed with `keys` (80 bytes), the keys every edge
        process shares; None goes back to this process's own setting. Returns whether shared
        keys are in use.

        OpenSSL takes ticket keys and the ticket count from the listener's context (the one a
        connection began with), not from the domain's context the SNI callback switches to.
        """
        if keys is not None and sslctx.set_ticket_keys(self.context, keys):
            tlsconfig.issue_tickets(self.context, count=1)
            self.shared_ticket_keys = True
        else:
            if keys is not None:
                logger.warning("this Python cannot set TLS ticket keys: tickets stay per process")
            tlsconfig.issue_tickets(self.context, count=2 if self._session_tickets else 0)
            self.shared_ticket_keys = False
        return self.shared_ticket_keys

    def _select(self, connection: ssl.SSLObject, server_name: str, _: ssl.SSLContext) -> int | None:
        # Typeshed says str, but OpenSSL calls this without a name when the client sent none.
        failures = self._counters.handshakes_failed
        if not server_name:
            failures["no_sni"] += 1
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        name = server_name.lower()
        if name.endswith("."):
            name = name[:-1]
        try:
            context = self._certificates.context_for(name)
        except CertificateNotLoaded:
            setattr(connection, LOAD_ATTRIBUTE, name)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR  # sent only if the load fails
        except UnusableCertificate:
            failures["certificate_unusable"] += 1  # logged once by the cache
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        except Exception:
            # An exception escaping here would only reach sys.unraisablehook.
            failures["other"] += 1
            logger.exception("choosing a certificate failed", extra={"domain": name})
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        if context is None:
            failures["unknown_name"] += 1
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = context
        return None


def count_handshake_error(counters: EdgeCounters, exc: ssl.SSLError) -> None:
    """Count a handshake OpenSSL refused, by a stable reason word, unless the SNI callback
    refused it (and counted it) already."""
    openssl_reason = exc.reason or ""
    if openssl_reason != _REFUSED_BY_CALLBACK:
        counters.handshakes_failed[_REASONS_BY_OPENSSL_REASON.get(openssl_reason, "other")] += 1
