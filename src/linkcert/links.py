"""Tracked links: minted for an account's link tracking domain, stored, signed."""

from __future__ import annotations

from dataclasses import dataclass

from linkcert.domains import NotFound, get_domain
from linkcert.store import Link, Store, utcnow
from linkcert.tracking import check_destination, make_token, tracked_url


@dataclass(frozen=True)
class TrackedUrl:
    link_id: int
    domain: str
    destination: str
    url: str
    open_url: str


def create_link(
    store: Store,
    tracking_key: bytes,
    domain_name: str,
    destination: str,
    *,
    account_id: int | None = None,
) -> TrackedUrl:
    """Store a link and return its tracked URLs (`https://DOMAIN/c/<token>`).

    With `account_id`, the domain must belong to that account (an account never mints links
    on another's domain).
    """
    check_destination(destination)
    with store.session() as session:
        domain = get_domain(session, domain_name)
        if account_id is not None and domain.account_id != account_id:
            raise NotFound(f"no domain {domain_name!r}")
        link = Link(domain_id=domain.id, destination=destination, created_at=utcnow())
        session.add(link)
        session.flush()
        token = make_token(tracking_key, domain.name, link.id, destination)
        return TrackedUrl(
            link_id=link.id,
            domain=domain.name,
            destination=destination,
            url=tracked_url(domain.name, token, "click"),
            open_url=tracked_url(domain.name, token, "open"),
        )
