"""What the edge reads from the store and writes back, without knowing about the database.

The edge keeps certificates in memory and never touches the database on its hot path. This
module fills its cache (a full pass at start, then new certificates as they appear, with a
periodic full pass that also drops removed ones, less often the more names there are), keeps
its book of pending HTTP-01 challenges (every open order's name and tokens, read each second
and at once when a worker announces a change), so that any edge process answers for any
worker, and writes recorded clicks in batches.

With more served names than `preload_limit`, the edge holds every name with its certificate's
id and link epoch, but a certificate only once a handshake has wanted it (`load_certificate`,
which reads it from the store: one row by its unique name); the passes then only change the
names and ids, and a certificate replaced in the store is read again at its next handshake.
Loading a million certificates at start would take minutes and about a gigabyte per machine;
the names take seconds and a fifth of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import bindparam, select

from linkcert.edge.certs import CertificateCache
from linkcert.edge.challenges import ChallengeBook
from linkcert.events.store import ClientIpMode, save_events
from linkcert.keys import DecryptionError, MasterKeys
from linkcert.keystore import cert_key_context
from linkcert.origins import OriginSpec, parse_origin
from linkcert.store import Account, Certificate, Challenge, Domain, Order, Store, utcnow
from linkcert.store.signals import CERTIFICATES, CHALLENGES, listen
from linkcert.tracking import Click

log = logging.getLogger("linkcert.feeds")

# Threads (so at most as many database connections) for reads of one pending name's challenges:
# requests from the internet can cause those, so they never take the threads that certificate
# sync and clicks use, nor more than these.
CHALLENGE_READ_THREADS = 2
# Threads for certificates loaded at a handshake (with more names than `preload_limit`).
CERTIFICATE_READ_THREADS = 2
# The periodic full pass reads every served name: every 30 s up to this many names, and
# proportionally less often above (every 5 minutes with a million). Changes made by linkcert's
# workers are announced and applied at once whatever the interval.
FULL_PASS_NAMES = 100_000
# Names read per query by a full pass when certificates are loaded on demand.
_SLICE = 20_000


@dataclass(frozen=True)
class _Loaded:
    name: str
    chain_pem: bytes
    key_pem: bytes
    version: int
    epoch: int


# A name the edge serves: proven to be an account's, not deleted nor being deleted. Released
# names have no owner any more, so they drop out too.
_LIVE = (
    Domain.account_id.is_not(None),
    Domain.deleted_at.is_(None),
    Domain.delete_requested.is_(False),
)

Wanted = dict[str, tuple[int, int]]  # name -> (certificate id, link epoch)

# A served name's current certificate, for its first handshake (above `preload_limit`).
_CURRENT = (
    select(Domain.link_epoch, Certificate.id, Certificate.chain_pem, Certificate.key_encrypted)
    .join(Certificate, Certificate.id == Domain.current_certificate_id)
    .where(
        Domain.name == bindparam("name"),
        Certificate.not_after > bindparam("now"),
        Certificate.revoked_at.is_(None),
        *_LIVE,
    )
)


@dataclass
class SyncResult:
    loaded: int = 0
    removed: int = 0
    failed: int = 0


class StoreFeeds:
    """The store-backed side of one edge process."""

    def __init__(
        self,
        store: Store,
        keys: MasterKeys,
        cache: CertificateCache,
        client_ip: ClientIpMode = "truncated",
        *,
        preload_limit: int | None = None,
        lazy: bool | None = None,
    ) -> None:
        """`preload_limit`: with more served names than this, certificates are loaded at
        their first handshake (None: always all at once). `lazy`: that decision, when it was
        made already (by the process that loaded the cache)."""
        self.store = store
        self.keys = keys
        self.cache = cache
        self.preload_limit = preload_limit
        self.lazy = lazy
        self._certificate_threads: ThreadPoolExecutor | None = None
        self._loading: dict[str, asyncio.Future[bool]] = {}
        # Names whose stored certificate at this version does not load: not read again.
        self._unloadable: dict[str, int] = {}
        self._failed_loads = 0
        self._failed_logged_at = float("-inf")
        self.client_ip: ClientIpMode = client_ip
        self.challenges = ChallengeBook(self.read_challenges)
        self._challenge_threads: ThreadPoolExecutor | None = None
        self._refreshing: set[asyncio.Task[None]] = set()
        # Proxy mode: names whose account has origins of its own (few), refreshed with every
        # full pass. Read by the edge through `upstreams_of`.
        self.upstreams: dict[str, tuple[OriginSpec, ...]] = {}

    def upstreams_of(self, name: str) -> tuple[OriginSpec, ...] | None:
        return self.upstreams.get(name)

    def _account_upstreams(self) -> dict[str, tuple[OriginSpec, ...]]:
        """Every domain of an account that has its own origins, with them, in a thread."""
        with self.store.session() as session:
            rows = session.execute(
                select(Domain.name, Account.upstreams)
                .join(Account, Domain.account_id == Account.id)
                .where(Account.upstreams.is_not(None))
            ).all()
        found: dict[str, tuple[OriginSpec, ...]] = {}
        for name, upstreams in rows:
            try:
                specs = tuple(parse_origin(item) for item in upstreams or ())
            except (TypeError, ValueError) as exc:
                log.error("account origins of %s cannot be used: %s", name, exc)
                continue
            if specs:
                found[name] = specs
        return found

    def _read_all(
        self, known: dict[str, tuple[int, int]]
    ) -> tuple[list[_Loaded], Wanted, list[str], dict[str, tuple[OriginSpec, ...]]]:
        loaded, indexed, removed = self._changes(known)
        return loaded, indexed, removed, self._account_upstreams()

    # --- certificates ------------------------------------------------------------------------

    def _served(self) -> Wanted:
        """Every domain that should be served now, with its current certificate's id and its
        link epoch."""
        now = utcnow()
        with self.store.session() as session:
            rows = session.execute(
                select(Domain.name, Certificate.id, Domain.link_epoch)
                .join(Certificate, Certificate.id == Domain.current_certificate_id)
                .where(Certificate.not_after > now, Certificate.revoked_at.is_(None), *_LIVE)
            ).all()
        return {name: (cert_id, epoch) for name, cert_id, epoch in rows}

    def _fetch(self, wanted: Wanted) -> list[_Loaded]:
        """Read and decrypt the given certificates (name -> certificate id, epoch), in a
        thread."""
        loaded: list[_Loaded] = []
        ids = [cert_id for cert_id, _ in wanted.values()]
        for start in range(0, len(ids), 500):
            with self.store.session() as session:
                rows = session.execute(
                    select(Domain.name, Certificate)
                    .join(Certificate, Certificate.domain_id == Domain.id)
                    .where(Certificate.id.in_(ids[start : start + 500]))
                ).all()
            for name, cert in rows:
                if cert.key_encrypted is None:
                    continue
                try:
                    key_pem = self.keys.decrypt(cert.key_encrypted, cert_key_context(name))
                except DecryptionError as exc:
                    log.error("cannot load the certificate of %s: %s", name, exc)
                    continue
                epoch = wanted[name][1] if name in wanted else 0
                loaded.append(
                    _Loaded(name, cert.chain_pem.encode("ascii"), key_pem, cert.id, epoch)
                )
        return loaded

    def _changes(
        self, known: dict[str, tuple[int, int]]
    ) -> tuple[list[_Loaded], Wanted, list[str]]:
        """What differs between the store and `known` (the cache's versions), in a thread:
        certificates to load, or (lazily) names to index, and names to drop."""
        served = self._served()
        if self.lazy is None:
            self.lazy = self.preload_limit is not None and len(served) > self.preload_limit
        stale = {n: v for n, v in served.items() if known.get(n) != v}
        removed = [n for n in known if n not in served]
        if self.lazy:
            return [], stale, removed
        return self._fetch(stale) if stale else [], {}, removed

    def _apply(
        self, loaded: list[_Loaded], removed: list[str], indexed: Wanted | None = None
    ) -> SyncResult:
        # The cache belongs to the event loop: only this step, on the loop, changes it.
        result = SyncResult(removed=len(removed))
        for item in loaded:
            try:
                self.cache.put(item.name, item.chain_pem, item.key_pem, item.version, item.epoch)
                result.loaded += 1
            except ValueError as exc:
                result.failed += 1
                log.error("cannot serve the certificate of %s: %s", item.name, exc)
        for name, (cert_id, epoch) in (indexed or {}).items():
            try:
                self.cache.put_index(name, cert_id, epoch)
                result.loaded += 1
            except ValueError as exc:
                result.failed += 1
                log.error("cannot serve %s: %s", name, exc)
        for name in removed:
            self.cache.remove(name)
        return result

    def _known(self) -> dict[str, tuple[int, int]]:
        return self.cache.versions()

    async def sync(self) -> SyncResult:
        """Make the cache hold exactly what the store says should be served now."""
        if self.lazy:
            return await self._sync_names()
        loaded, indexed, removed, upstreams = await asyncio.to_thread(self._read_all, self._known())
        self.upstreams = upstreams
        return self._apply(loaded, removed, indexed)

    async def _sync_names(self) -> SyncResult:
        """`sync()` with certificates loaded on demand: the served names are read a slice at a
        time and each compared with the cache on the loop, so that neither a million-name copy
        of the store's answer nor one of the cache's is ever made (and the names the process
        inherited are not walked: see CertificateStore.compare)."""
        cache = self.cache
        seen = cache.begin_comparison()
        stale: Wanted = {}
        after = 0
        try:
            while True:
                rows, after = await asyncio.to_thread(self._served_slice, after)
                for name, cert_id, epoch in rows:
                    if cache.compare(name, cert_id, epoch, seen) != 1:
                        stale[name] = (cert_id, epoch)
                if len(rows) < _SLICE:
                    break
        finally:
            removed = cache.end_comparison(seen)
        self.upstreams = await asyncio.to_thread(self._account_upstreams)
        return self._apply([], removed, stale)

    def _served_slice(self, after: int) -> tuple[list[tuple[str, int, int]], int]:
        """Up to _SLICE served domains with an id above `after`, in id order, as (name,
        certificate id, link epoch), and the last one's id (in a thread)."""
        now = utcnow()
        with self.store.session() as session:
            rows = session.execute(
                select(Domain.id, Domain.name, Certificate.id, Domain.link_epoch)
                .join(Certificate, Certificate.id == Domain.current_certificate_id)
                .where(
                    Domain.id > after,
                    Certificate.not_after > now,
                    Certificate.revoked_at.is_(None),
                    *_LIVE,
                )
                .order_by(Domain.id)
                .limit(_SLICE)
            ).all()
        last = rows[-1][0] if rows else after
        return [(name, cert_id, epoch) for _, name, cert_id, epoch in rows], last

    def sync_here(self) -> SyncResult:
        """`sync()` in the calling thread, for a process with no event loop: the edge pool's
        parent loads the cache this way before it forks its workers."""
        loaded, indexed, removed, self.upstreams = self._read_all(self._known())
        return self._apply(loaded, removed, indexed)

    def cursor(self) -> int:
        """The newest certificate the cache holds: where an incremental pass starts from."""
        return self.cache.max_version()

    # --- certificates loaded at their first handshake ----------------------------------------

    async def load_certificate(self, name: str) -> bool:
        """Read `name`'s current certificate into the cache, for a handshake that wants it;
        returns whether the handshake can go on (the certificate is there, or the name turned
        out not to be served any more and was dropped). Concurrent calls for one name share
        one read; a caller that stops waiting does not stop it."""
        loading = self._loading.get(name)
        if loading is None:
            loop = asyncio.get_running_loop()
            loading = loop.create_future()
            self._loading[name] = loading
            task = loop.create_task(self._load_one(name))
            task.add_done_callback(lambda done: self._loaded(name, loading, done))
        return await asyncio.shield(loading)

    def _loaded(self, name: str, loading: asyncio.Future[bool], task: asyncio.Task[bool]) -> None:
        del self._loading[name]
        if task.cancelled():
            loading.cancel()
        elif task.exception() is not None:
            # A database outage fails every load: one line a minute, with the count.
            self._failed_loads += 1
            now = asyncio.get_running_loop().time()
            if now - self._failed_logged_at >= 60.0:
                more = self._failed_loads - 1
                log.warning(
                    "cannot read the certificate of %s from the store: %s%s",
                    name,
                    task.exception(),
                    f" (and {more} other reads failed since the last such line)" if more else "",
                )
                self._failed_loads = 0
                self._failed_logged_at = now
            loading.set_result(False)
        else:
            loading.set_result(task.result())

    async def _load_one(self, name: str) -> bool:
        if self.cache.is_loaded(name):
            return True
        version = self.cache.version(name)
        if version is not None and self._unloadable.get(name) == version:
            return False  # already said why, in the log
        loop = asyncio.get_running_loop()
        if self._certificate_threads is None:
            self._certificate_threads = ThreadPoolExecutor(
                CERTIFICATE_READ_THREADS, thread_name_prefix="linkcert-certificates"
            )
        found = await loop.run_in_executor(self._certificate_threads, self._read_current, name)
        if found is None:
            self.cache.remove(name)  # not served any more: the handshake learns so
            return True
        if isinstance(found, int):
            self._unloadable[name] = found
            return False
        try:
            self.cache.put(
                name, found.chain_pem, found.key_pem, found.version, found.epoch, on_demand=True
            )
        except ValueError as exc:
            log.error("cannot serve the certificate of %s: %s", name, exc)
            self.cache.put_index(name, found.version, found.epoch)
            self._unloadable[name] = found.version
            return False
        self._unloadable.pop(name, None)
        return True

    def _read_current(self, name: str) -> _Loaded | int | None:
        """`name`'s current certificate, decrypted (in a thread); None when the name is not
        served, the certificate's id when its key does not decrypt (logged)."""
        # One statement, compiled once (SQLAlchemy caches it), on a bare connection: this runs
        # for every name's first handshake, so it costs a fraction of an ORM session.
        with self.store.engine.connect() as connection:
            row = connection.execute(_CURRENT, {"name": name, "now": utcnow()}).first()
        if row is None:
            return None
        epoch, cert_id, chain_pem, key_encrypted = row
        if key_encrypted is None:
            return None
        try:
            key_pem = self.keys.decrypt(key_encrypted, cert_key_context(name))
        except DecryptionError as exc:
            log.error("cannot load the certificate of %s: %s", name, exc)
            return int(cert_id)
        return _Loaded(name, chain_pem.encode("ascii"), key_pem, cert_id, epoch)

    async def refresh_domain(self, name: str) -> None:
        """Load (or drop) one domain's certificate now: a worker has just changed it."""

        def fetch() -> tuple[list[_Loaded], list[str]]:
            wanted, removed = self._current_of(name)
            return (self._fetch(wanted) if wanted else []), removed

        if self.lazy:
            indexed, removed = await asyncio.to_thread(self._current_of, name)
            self._apply([], [n for n in removed if n in self.cache], indexed)
            return
        loaded, removed = await asyncio.to_thread(fetch)
        self._apply(loaded, [n for n in removed if n in self.cache])

    def _current_of(self, name: str) -> tuple[Wanted, list[str]]:
        """`name`'s current certificate id and epoch, or that it is not served (in a thread)."""
        now = utcnow()
        with self.store.session() as session:
            row = session.execute(
                select(Certificate.id, Domain.link_epoch)
                .join(Domain, Domain.current_certificate_id == Certificate.id)
                .where(
                    Domain.name == name,
                    Certificate.not_after > now,
                    Certificate.revoked_at.is_(None),
                    *_LIVE,
                )
            ).first()
        if row is None:
            return {}, [name]
        return {name: (row[0], row[1])}, []

    def _newer_than(self, last_id: int) -> Wanted:
        """Current certificates stored after `last_id`: what a cheap incremental pass loads."""
        with self.store.session() as session:
            rows = session.execute(
                select(Domain.name, Certificate.id, Domain.link_epoch)
                .join(Domain, Domain.current_certificate_id == Certificate.id)
                .where(Certificate.id > last_id, Certificate.revoked_at.is_(None), *_LIVE)
            ).all()
        return {name: (cert_id, epoch) for name, cert_id, epoch in rows}

    async def keep_in_sync(
        self,
        stop: asyncio.Event,
        interval: float = 1.0,
        full_every: float = 30.0,
        *,
        since: int | None = None,
        first_full_after: float = 0.0,
    ) -> None:
        """Follow the store until `stop`.

        Every `interval` seconds a cheap query loads certificates stored since the last look;
        every `full_every` seconds a full pass also drops removed and expired ones, the first
        one `first_full_after` seconds from now. On PostgreSQL, workers announce each change,
        which is applied at once. A store that is briefly unreachable leaves the cache serving
        what it has.

        `since` is the cursor (`cursor()`) of a load done before this call, possibly in another
        process: the cheap passes continue from it, loading what was stored after that load.
        """
        loop = asyncio.get_running_loop()
        changed: asyncio.Queue[str] = asyncio.Queue()

        def notified(channel: str, payload: str) -> None:
            if channel == CERTIFICATES:
                changed.put_nowait(payload)
            elif payload:  # a name's open order or challenges changed
                self._spawn_refresh(payload)
            # (after a reconnect, the next pass reads every pending challenge anyway)

        catching_up: set[asyncio.Task[None]] = set()
        connections = [0]  # listening connections made, so a stale catch-up changes nothing

        async def catch_up(connection: int) -> None:
            # Listening now: what was pending before is read once more, then every change is
            # announced, and a name memory does not hold can be refused without a read.
            try:
                await self.sync_challenges()
            except Exception as exc:
                log.warning("challenge sync failed, answering from memory: %s", exc)
                return
            if connections[0] == connection:
                self.challenges.announced = True

        def listening(live: bool) -> None:
            connections[0] += 1
            if not live:
                self.challenges.announced = False
                return
            task = loop.create_task(catch_up(connections[0]))
            catching_up.add(task)
            task.add_done_callback(catching_up.discard)

        listener = None
        if self.store.dialect == "postgresql":
            self.challenges.announced = False
            listener = asyncio.ensure_future(
                listen(
                    self.store.url,
                    [CERTIFICATES, CHALLENGES],
                    notified,
                    stop,
                    on_listening=listening,
                )
            )
        last_full = loop.time() - full_every + first_full_after
        last_id = since or 0
        try:
            while not stop.is_set():
                try:
                    await self.sync_challenges()
                except Exception as exc:
                    log.warning("challenge sync failed, answering from memory: %s", exc)
                try:
                    every = full_every * max(1.0, len(self.cache) / FULL_PASS_NAMES)
                    if loop.time() - last_full >= every:
                        await self.sync()
                        last_full = loop.time()
                        last_id = self.cursor()
                    else:
                        newer = await asyncio.to_thread(self._newer_than, last_id)
                        if newer and self.lazy:
                            self._apply([], [], newer)
                        elif newer:
                            self._apply(await asyncio.to_thread(self._fetch, newer), [])
                        if newer:
                            last_id = max(cert_id for cert_id, _ in newer.values())
                    while not changed.empty():
                        name = changed.get_nowait()
                        if name:
                            await self.refresh_domain(name)
                        else:  # reconnected: notifications may have been missed
                            last_full = -every
                except Exception as exc:
                    log.warning("certificate sync failed, serving from memory: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop, changed), timeout=interval)
        finally:
            for task in list(catching_up):
                task.cancel()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    # --- challenges ------------------------------------------------------------------------

    def _pending_challenges(self, name: str | None = None) -> dict[str, dict[str, str]]:
        """The names with an open order (all, or just `name`), each with its published tokens."""
        query = (
            select(Domain.name, Challenge.token, Challenge.key_authorization)
            .select_from(Order)
            .join(Domain, Domain.id == Order.domain_id)
            .outerjoin(Challenge, Challenge.order_id == Order.id)
            .where(Order.finished_at.is_(None))
        )
        if name is not None:
            query = query.where(Domain.name == name)
        pending: dict[str, dict[str, str]] = {}
        with self.store.session() as session:
            for domain, token, key_authorization in session.execute(query):
                tokens = pending.setdefault(domain, {})
                if token is not None:
                    tokens[token] = key_authorization
        return pending

    async def sync_challenges(self) -> None:
        """Make the book hold every open order's name and tokens, as the store has them now."""
        as_of = asyncio.get_running_loop().time()
        pending = await asyncio.to_thread(self._pending_challenges)
        self.challenges.replace_all(pending, as_of)

    async def read_challenges(self, name: str) -> dict[str, str] | None:
        """One name's tokens (None: no open order), on the challenge threads."""
        loop = asyncio.get_running_loop()
        if self._challenge_threads is None:
            self._challenge_threads = ThreadPoolExecutor(
                CHALLENGE_READ_THREADS, thread_name_prefix="linkcert-challenges"
            )
        pending = await loop.run_in_executor(
            self._challenge_threads, self._pending_challenges, name
        )
        return pending.get(name)

    async def refresh_challenges(self, name: str) -> None:
        """Read one name's open order and tokens into the book now: a worker changed them."""
        as_of = asyncio.get_running_loop().time()
        self.challenges.put(name, await self.read_challenges(name), as_of)

    def _spawn_refresh(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self.refresh_challenges(name))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("reading an announced challenge failed: %s", task.exception())

    def close(self) -> None:
        for task in self._refreshing:
            task.cancel()
        if self._challenge_threads is not None:
            self._challenge_threads.shutdown(wait=False, cancel_futures=True)
            self._challenge_threads = None
        if self._certificate_threads is not None:
            self._certificate_threads.shutdown(wait=False, cancel_futures=True)
            self._certificate_threads = None

    # --- clicks ------------------------------------------------------------------------------

    async def save_clicks(self, clicks: Sequence[Click]) -> None:
        await asyncio.to_thread(self._save_clicks, list(clicks))

    def _save_clicks(self, clicks: list[Click]) -> None:
        save_events(self.store, clicks, self.client_ip)


async def _first(stop: asyncio.Event, changed: asyncio.Queue[str]) -> None:
    """Return when `stop` is set or a change was announced (without taking it)."""
    if not changed.empty():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(_peek(changed))]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _peek(queue: asyncio.Queue[str]) -> None:
    item = await queue.get()
    queue.put_nowait(item)
