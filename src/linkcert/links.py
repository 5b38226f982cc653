"""Tracked links: minted for an account's link tracking domain, signed, one at a time or in bulk.

A version 2 token needs no database row: the edge reads everything from the token. The single
link call still stores a row, so that its `link_id` stays what it always was; batches store
nothing and carry the platform's own data instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from linkcert.config import ConfigError, Settings
from linkcert.domains import NotFound, get_domain
from linkcert.store import Domain, Link, Store, utcnow
from linkcert.tracking import (
    MAX_DATA_BYTES,
    InvalidDestination,
    Minter,
    TrackingKeys,
    parse_key_entries,
    tracking_key_from_secret,
)
from linkcert.tracking.destinations import normalize_destination

MAX_BATCH_LINKS = 10_000


@dataclass(frozen=True)
class TrackedUrl:
    link_id: int | None
    domain: str
    destination: str
    url: str
    open_url: str
    data: bytes = b""


@dataclass(frozen=True)
class BatchItem:
    url: str
    data: bytes = b""


class InvalidBatch(ValueError):
    """Some items of a batch cannot be minted; `problems` lists (index, message) for each, and
    nothing was minted."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(problems)} of the links cannot be minted")
        self.problems = problems


def tracking_keys(settings: Settings) -> TrackingKeys:
    """The keys in force: `tracking_keys` (first mints), or `tracking_key` as key id 0."""
    try:
        if settings.tracking_keys:
            entries = parse_key_entries([e.get_secret_value() for e in settings.tracking_keys])
            return TrackingKeys.from_secrets(entries)
        if settings.tracking_key is not None:
            return TrackingKeys(
                [(0, tracking_key_from_secret(settings.tracking_key.get_secret_value()))]
            )
    except ValueError as exc:
        raise ConfigError(f"tracking_keys: {exc}") from None
    raise ConfigError(
        "no tracking key: set LINKCERT_TRACKING_KEY to a secret of at least 32 characters "
        "(or LINKCERT_TRACKING_KEYS to ID:SECRET entries to rotate keys)"
    )


def _owned_domain(store: Store, domain_name: str, account_id: int | None) -> Domain:
    with store.session() as session:
        domain = get_domain(session, domain_name)
        if account_id is not None and domain.account_id != account_id:
            raise NotFound(f"no domain {domain_name!r}")
        session.expunge(domain)
        return domain


def _epoch(domain: Domain) -> int:
    # The domain's epoch, once domains have one: links minted under an earlier one are refused.
    return int(getattr(domain, "epoch", 0) or 0)


def create_link(
    store: Store,
    keys: TrackingKeys | bytes,
    domain_name: str,
    destination: str,
    *,
    account_id: int | None = None,
    data: bytes = b"",
) -> TrackedUrl:
    """Store a link and return its tracked URLs (`https://DOMAIN/c/<token>`).

    With `account_id`, the domain must belong to that account (an account never mints links
    on another's domain). The destination is stored and signed in its normalized form
    (`normalize_destination`: IDNA host, percent-encoded path and query).
    """
    destination = normalize_destination(destination)
    _check_data(data)
    with store.session() as session:
        domain = get_domain(session, domain_name)
        if account_id is not None and domain.account_id != account_id:
            raise NotFound(f"no domain {domain_name!r}")
        link = Link(domain_id=domain.id, destination=destination, created_at=utcnow())
        session.add(link)
        session.flush()
        minter = Minter(keys, domain.name, epoch=_epoch(domain))
        token = minter.token(destination, data, link_id=link.id)
        return TrackedUrl(
            link_id=link.id,
            domain=domain.name,
            destination=destination,
            url=f"https://{domain.name}/c/{token}",
            open_url=f"https://{domain.name}/o/{token}",
            data=data,
        )


@dataclass(frozen=True)
class MintedBatch:
    """The tokens of a batch, in order; the URLs are `https://DOMAIN/c/<token>` (clicks) and
    `https://DOMAIN/o/<token>` (the open pixel)."""

    domain: str
    tokens: list[str]


def create_links(
    store: Store,
    keys: TrackingKeys | bytes,
    domain_name: str,
    items: Sequence[BatchItem],
    *,
    account_id: int | None = None,
) -> MintedBatch:
    """Mint one link per item, in order, with no row stored; InvalidBatch if any item is bad
    (then none is minted). One store read: the domain and who owns it."""
    if len(items) > MAX_BATCH_LINKS:
        raise InvalidBatch([(MAX_BATCH_LINKS, f"a batch holds at most {MAX_BATCH_LINKS:,} links")])
    problems: list[tuple[int, str]] = []
    destinations: list[str] = []
    for index, item in enumerate(items):
        try:
            destinations.append(normalize_destination(item.url))
            _check_data(item.data)
        except (InvalidDestination, ValueError) as exc:
            problems.append((index, str(exc)))
    if problems:
        raise InvalidBatch(problems)
    domain = _owned_domain(store, domain_name, account_id)
    token = Minter(keys, domain.name, epoch=_epoch(domain)).token
    return MintedBatch(
        domain.name,
        [token(url, item.data) for item, url in zip(items, destinations, strict=True)],
    )


def _check_data(data: bytes) -> None:
    if not isinstance(data, bytes):
        raise ValueError(f"data must be bytes, not {type(data).__name__}")
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"data is {len(data)} bytes long; the limit is {MAX_DATA_BYTES}")
