"""Installing a certificate on a domain: the one state change every new certificate goes through.

A certificate issued over ACME and one uploaded for a brand domain are installed the same way,
in the caller's transaction: the certificate becomes the domain's current one, the domain is
secured (its problems cleared), the edges are told at once (on PostgreSQL, a notification; on
SQLite they see it at their next poll), the issued-certificates counter moves, the customer is
told when the domain is newly secured, and the domain's timeline records it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from linkcert.counters import count_certificate_issued
from linkcert.domains import record_event
from linkcert.notify import NotificationKind
from linkcert.notify.outbox import Notifier
from linkcert.states import CertState
from linkcert.store import Certificate, Domain
from linkcert.store.signals import CERTIFICATES, announce


def install_certificate(
    session: Session,
    domain: Domain,
    certificate: Certificate,
    *,
    notifier: Notifier | None,
    event: str,
    message: str,
    renewing: bool | None = None,
    **details: Any,
) -> None:
    """Make `certificate` the current one of `domain`, with every side effect.

    `event` and `message` go to the domain's timeline (with the serial and `details`).
    `renewing` says whether the certificate replaces one that served the domain; by default,
    whether the domain had a current certificate. Only a domain newly secured notifies the
    customer.
    """
    if renewing is None:
        renewing = domain.current_certificate_id is not None
    session.add(certificate)
    session.flush()
    domain.current_certificate_id = certificate.id
    domain.cert_state = CertState.ACTIVE
    domain.problems = []
    domain.failure_class = None
    announce(session, CERTIFICATES, domain.name)
    count_certificate_issued(renewal=renewing)
    if not renewing and notifier is not None:
        notifier.emit(
            session,
            NotificationKind.SECURED,
            domain,
            message=f"{domain.unicode_name} is secured: tracked links work over HTTPS.",
        )
    record_event(session, domain, event, message, serial=certificate.serial, **details)
