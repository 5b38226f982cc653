"""Tracked links: minted for an account's link tracking domain, stored, signed."""

from __future__ import annotations

from dataclasses import dataclass

from linkcert.domains import NotFound, NotProven, get_domain
from linkcert.store import Account, Link, Store, utcnow
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

    Links are made only on a name DNS has proven to be an account's (and not deleted): the edge
    answers nothing else. With `account_id`, the domain must be that account's (an account
    never mints links on another's domain, nor on a name it only claims). The token is signed
    in the domain's link epoch, so that a delete, a release or a change of owner ends it.
    """
    check_destination(destination)
    with store.session() as session:
        domain = get_domain(session, domain_name)
        if account_id is not None and domain.account_id != account_id:
            account = session.get(Account, account_id)
            if account is None or account.tracking_domain_id != domain.id:
                raise NotFound(f"no domain {domain_name!r}")
        if domain.account_id is None or domain.delete_requested or domain.deleted_at is not None:
            raise NotProven(
                f"{domain.unicode_name} is not proven to be an account's: links are made only "
                "once its DNS names the account (see the DNS records on the account's page)"
            )
        if account_id is not None and domain.account_id != account_id:
            raise NotProven(
                f"{domain.unicode_name} is not proven to be this account's: its DNS names "
                "another account"
            )
        link = Link(domain_id=domain.id, destination=destination, created_at=utcnow())
        session.add(link)
        session.flush()
        token = make_token(tracking_key, domain.name, link.id, destination, domain.link_epoch)
        return TrackedUrl(
            link_id=link.id,
            domain=domain.name,
            destination=destination,
            url=tracked_url(domain.name, token, "click"),
            open_url=tracked_url(domain.name, token, "open"),
        )
