"""The certificates the edge serves, kept compactly, with SSL contexts built on demand.

The integrator fills the cache (`put`, `remove`) from the store. Holding a ready SSLContext for
each of 100,000 domains would cost gigabytes and minutes at start-up, so the cache keeps DER
bytes, packed (certstore.py; intermediates shared between domains), and builds a domain's
context on its first handshake, keeping the most recently used ones in a bounded LRU.

With more domains than are worth holding (a million), the integrator puts only each served
name's version and link epoch (`put_index`) and the certificate itself when a handshake first
wants it (`put(..., on_demand=True)`): `context_for` raises CertificateNotLoaded for a name known
but not loaded, and the TLS layer waits for the load before it goes on (tls.py, http.py).
Certificates loaded that way are bounded too (`max_loaded`): the oldest loaded is dropped
first, and loaded again if wanted again.

Not thread-safe: call it from the event loop thread that runs the edge.
"""

from __future__ import annotations

import logging
import ssl
from collections import OrderedDict

from linkcert.edge import pem, tlsconfig
from linkcert.edge.certstore import CertificateStore, StoredCertificate

logger = logging.getLogger(__name__)

# A ready context costs about 26 KiB (13 of them for OpenSSL 3.0's bare SSL_CTX, the rest for the
# parsed chain and key) against about 0.8 KiB for a certificate kept packed as DER, and takes
# about 1 ms of CPU to build (mostly OpenSSL 3.0's decoders). 1024 per edge process (26 MiB) is
# meant to cover the names that get clicks at any one time; a colder name pays the build on its
# next handshake. Measured in bench/RESULTS.md ("Edge").
DEFAULT_MAX_CONTEXTS = 1024
# Certificates loaded at their first handshake, held as packed DER by each edge process (about
# 0.8 KiB each, 1.6 KiB with a public CA's longer certificates): about 50 to 100 MiB.
DEFAULT_MAX_LOADED = 65_536


class DomainContext(ssl.SSLContext):
    """A server context holding one domain's certificate, labelled with that domain."""

    domain: str
    version: int


class UnusableCertificate(Exception):
    """The stored PEMs for a domain could not be loaded (say, the key does not match)."""


class CertificateNotLoaded(Exception):
    """The name is served, but its certificate is not in memory yet: load it, then ask again."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the certificate of {name} is not loaded yet")
        self.name = name


class _Failed:
    """A remembered load failure, so a broken certificate costs one attempt per version."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def normalize_name(name: str) -> str:
    """Lowercase ASCII without a trailing dot: the one spelling the cache and SNI compare."""
    if not name.isascii() or not name.strip("."):
        raise ValueError(f"certificate name {name!r} must be a non-empty ASCII (A-label) name")
    name = name.lower()
    return name[:-1] if name.endswith(".") else name


class CertificateCache:
    """Domain name → certificate chain and key, with lazily built, LRU-bounded SSL contexts."""

    def __init__(
        self, *, max_contexts: int = DEFAULT_MAX_CONTEXTS, max_loaded: int = DEFAULT_MAX_LOADED
    ) -> None:
        if max_contexts < 1:
            raise ValueError("max_contexts must be at least 1")
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self._max_contexts = max_contexts
        self._max_loaded = max_loaded
        self._stored = CertificateStore()
        self._contexts: OrderedDict[str, DomainContext | _Failed] = OrderedDict()
        # Names whose certificate was loaded at a handshake, oldest first.
        self._on_demand: OrderedDict[str, None] = OrderedDict()
        self.contexts_built = 0
        self.context_failures = 0
        self.loaded_on_demand = 0
        # Names put while a comparison with the store is under way (see begin_comparison).
        self._touched: set[str] | None = None

    def put(
        self,
        name: str,
        chain_pem: bytes,
        key_pem: bytes,
        version: int,
        epoch: int = 0,
        *,
        on_demand: bool = False,
    ) -> None:
        """Serve `chain_pem` (leaf first) and `key_pem` for `name` from the next handshake on.

        `version` is the integrator's label for this content (the store's row version): it is
        reported by `version()` and in logs. `epoch` is the name's link epoch, which tracked
        links on it are signed in (`link_epoch()`). Raises ValueError (pem.PemError) when the
        PEMs are not one or more certificates and exactly one unencrypted private key.
        `on_demand`: loaded because a handshake wanted it, and so counted against `max_loaded`.
        """
        name = normalize_name(name)
        if self._touched is not None:
            self._touched.add(name)
        certificates = pem.certificates_from_pem(chain_pem)
        key_label, key_der = pem.private_key_from_pem(key_pem)
        changed = self._stored.put(
            name, version, certificates[0], tuple(certificates[1:]), key_label, key_der
        )
        self._stored.set_epoch(name, epoch)
        if changed:
            self._contexts.pop(name, None)
        else:
            context = self._contexts.get(name)
            if isinstance(context, DomainContext):
                context.version = version
        if on_demand:
            self.loaded_on_demand += 1
            self._on_demand.pop(name, None)
            self._on_demand[name] = None
            self._drop_oldest_loaded()

    def put_index(self, name: str, version: int, epoch: int = 0) -> None:
        """Serve `name` from the next handshake on, its certificate to be loaded then: the
        handshake's `context_for` raises CertificateNotLoaded until `put` gives it. A name
        already held at `version` keeps its certificate; at another version, it is dropped."""
        name = normalize_name(name)
        if self._touched is not None:
            self._touched.add(name)
        if self._stored.put_index(name, version):
            self._contexts.pop(name, None)
            self._on_demand.pop(name, None)
        self._stored.set_epoch(name, epoch)

    def is_loaded(self, name: str) -> bool:
        """Whether `name` (normalized) is served with its certificate in memory."""
        return self._stored.is_loaded(name)

    @property
    def loaded_count(self) -> int:
        return self._stored.loaded_count

    def _drop_oldest_loaded(self) -> None:
        while len(self._on_demand) > self._max_loaded:
            name, _ = self._on_demand.popitem(last=False)
            if self._stored.unload(name):
                self._contexts.pop(name, None)

    def remove(self, name: str) -> bool:
        """Stop serving `name`; returns whether it was there. Live connections are not cut."""
        name = normalize_name(name)
        self._contexts.pop(name, None)
        self._on_demand.pop(name, None)
        return self._stored.remove(name)

    def names(self) -> list[str]:
        """The names currently served, in no particular order."""
        return self._stored.names()

    def pack(self) -> None:
        """Lay the names out compactly in memory: call before forking (see CertificateStore)."""
        self._stored.pack()

    # Comparing every name with the store, without walking the names held (CertificateStore.
    # compare says why): begin, compare each name the store serves, end with the names held
    # that the store did not list, leaving out those put meanwhile.

    def begin_comparison(self) -> bytearray:
        self._touched = set()
        return bytearray(self._stored.row_count)

    def compare(self, name: str, version: int, epoch: int, seen: bytearray) -> int:
        """0: `name` (normalized) is not served; 1: served at `version` and `epoch`; 2: served
        otherwise."""
        return self._stored.compare(name, version, epoch, seen)

    def end_comparison(self, seen: bytearray) -> list[str]:
        touched, self._touched = self._touched or set(), None
        return [name for name in self._stored.names_not_seen(seen) if name not in touched]

    def versions(self) -> dict[str, tuple[int, int]]:
        """Every name served, with its (version, link epoch): for comparing with the store."""
        return self._stored.versions()

    def max_version(self) -> int:
        """The highest version served (0 for none)."""
        return self._stored.max_version()

    def version(self, name: str) -> int | None:
        """The version last put for `name`, or None if it is not served."""
        return self._stored.version(normalize_name(name))

    def link_epoch(self, host: str) -> int | None:
        """The link epoch of `host` (lowercase, no trailing dot: as the edge parses a Host
        header), or None when the edge does not serve it: tracked links are answered only
        on names it serves."""
        return self._stored.epoch(host)

    def __len__(self) -> int:
        return len(self._stored)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return normalize_name(name) in self._stored
        except ValueError:
            return False

    @property
    def contexts_cached(self) -> int:
        return len(self._contexts)

    @property
    def packed_bytes(self) -> int:
        """Bytes of DER held for all names (intermediates once): for metrics."""
        return self._stored.packed_bytes

    def context_for(self, name: str) -> DomainContext | None:
        """The SSL context for `name` (lowercase ASCII), building it if needed.

        Returns None for a name that is not served; raises UnusableCertificate if its PEMs do
        not load, CertificateNotLoaded if it is served but its certificate is not in memory.
        """
        cached = self._contexts.get(name)
        if cached is not None:
            self._contexts.move_to_end(name)
            if isinstance(cached, _Failed):
                raise UnusableCertificate(cached.message)
            return cached
        stored = self._stored.get(name)
        if stored is None:
            if name in self._stored:
                raise CertificateNotLoaded(name)
            return None
        built: DomainContext | _Failed
        try:
            built = self._build(name, stored)
            self.contexts_built += 1
        except (ssl.SSLError, OSError, ValueError) as exc:
            self.context_failures += 1
            message = f"certificate for {name} (version {stored.version}) does not load: {exc}"
            logger.error(message, extra={"domain": name, "cert_version": stored.version})
            built = _Failed(message)
        self._contexts[name] = built
        if len(self._contexts) > self._max_contexts:
            self._contexts.popitem(last=False)
        if isinstance(built, _Failed):
            raise UnusableCertificate(built.message)
        return built

    @staticmethod
    def _build(name: str, stored: StoredCertificate) -> DomainContext:
        context = DomainContext(ssl.PROTOCOL_TLS_SERVER)
        tlsconfig.configure(context)
        parts = [pem.to_pem(pem.CERTIFICATE, stored.leaf)]
        parts.extend(pem.to_pem(pem.CERTIFICATE, der) for der in stored.intermediates)
        parts.append(pem.to_pem(stored.key_label, stored.key_der))
        tlsconfig.load_chain_from_memory(context, b"".join(parts))
        context.domain = name
        context.version = stored.version
        return context
