"""A real DNS server on loopback, for tests, benchmarks, Pebble and the demo (never production).

`LocalDNSServer` answers UDP and TCP queries the way a recursive resolver answers for the names it
holds: it follows CNAME chains and DNAME redirections inside its own data and returns the whole
chain, says NXDOMAIN only for names with no records at or below them, and NOERROR with an empty
answer (NODATA) for names that exist without the type asked. Records can be changed while it runs,
and any name can be made to fail (SERVFAIL) or to never answer, so clients meet the failures they
will meet on the Internet.

Record data is parsed and encoded by dnspython (so any type and any CAA flag, tag or value works);
the generic form `\\# LENGTH HEX` is taken as raw bytes without any check, which is how tests serve
malformed data. dnslib builds and parses the messages.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.DNAME
import dns.tokenizer
import dns.zonefile
from dnslib import EDNS0, QTYPE, RCODE, RD, RR, DNSHeader, DNSLabel, DNSRecord

_CNAME = int(dns.rdatatype.CNAME)
_DNAME = int(dns.rdatatype.DNAME)
_SOA = int(dns.rdatatype.SOA)
_ANY = int(dns.rdatatype.ANY)
_OPT = int(dns.rdatatype.OPT)

# Without EDNS a UDP answer must fit in 512 bytes (RFC 1035); with EDNS, in the size the client
# announced. We announce the size the 2020 DNS flag day settled on.
_CLASSIC_UDP_LIMIT = 512
_OUR_EDNS_PAYLOAD = 1232
_TCP_MESSAGE_LIMIT = 65535

# Resolvers give up on long alias chains; ours is generous so that the limits tests exercise are
# the clients' own, not the server's.
_MAX_ALIAS_STEPS = 32

# A TCP client may keep its connection open for several queries; one that goes quiet this long
# is dropped so that stop() never waits on it.
_TCP_IDLE_SECONDS = 5.0

# How often the serving loops look for a stop request: stop() takes about this long.
_POLL_SECONDS = 0.02

RType = str | int


@dataclass
class _RRset:
    ttl: int
    rdatas: list[bytes] = field(default_factory=list)
    # CNAME and DNAME sets hold one record; its target is kept parsed for chasing.
    target: dns.name.Name | None = None


@dataclass(frozen=True)
class _Answer:
    """What the resolution of one question produced, before it is encoded."""

    rcode: int
    answer: tuple[tuple[dns.name.Name, int, int, bytes], ...] = ()
    authority: tuple[tuple[dns.name.Name, int, int, bytes], ...] = ()


# A question that must go unanswered (the name is set to time out).
_NO_ANSWER = None


class LocalDNSServer:
    """A DNS server on loopback answering from an in-memory record set that can change at runtime.

    Use it as a context manager, or call `start()` and `stop()`. `address` is the (host, port) it
    listens on, over both UDP and TCP; `nameserver` is the same as a "HOST:PORT" string, the form
    `linkcert check --nameserver` and `pebble -dnsserver` take. All methods are thread-safe.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._requested_port = port
        self._lock = threading.RLock()
        self._nodes: dict[dns.name.Name, dict[int, _RRset]] = {}
        # How many names holding records are at or below each name: a name "exists" (NOERROR
        # rather than NXDOMAIN) when this is positive, which covers empty non-terminals.
        self._population: Counter[dns.name.Name] = Counter()
        self._servfail: set[tuple[dns.name.Name, int | None]] = set()
        self._silent: set[tuple[dns.name.Name, int | None]] = set()
        self._query_count = 0
        self._tcp_query_count = 0
        self._udp_server: _UDPServer | None = None
        self._tcp_server: _TCPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind UDP and TCP on the same port and serve both from background threads."""
        if self._udp_server is not None:
            raise RuntimeError("the DNS server is already running")
        self._udp_server, self._tcp_server = _bind_pair(self._host, self._requested_port, self)
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_SECONDS},
                name=f"localdns-{kind}",
                daemon=True,
            )
            for kind, server in (("udp", self._udp_server), ("tcp", self._tcp_server))
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Stopping a stopped server does nothing."""
        servers = [s for s in (self._udp_server, self._tcp_server) if s is not None]
        # Each shutdown waits for its loop's next poll; wait for both at once.
        stoppers = [threading.Thread(target=server.shutdown) for server in servers]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._udp_server = self._tcp_server = None
        self._threads = []

    def __enter__(self) -> Self:
        if self._udp_server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on; only known once it is started."""
        if self._udp_server is None:
            raise RuntimeError("the DNS server is not running: call start() first")
        host, port = self._udp_server.server_address[:2]
        return str(host), int(port)

    @property
    def nameserver(self) -> str:
        """The address as "HOST:PORT" ("[HOST]:PORT" for IPv6)."""
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def query_count(self) -> int:
        """How many queries the server has received, over UDP and TCP, answered or not."""
        with self._lock:
            return self._query_count

    @property
    def tcp_query_count(self) -> int:
        """How many of those queries came over TCP."""
        with self._lock:
            return self._tcp_query_count

    def reset_query_count(self) -> None:
        with self._lock:
            self._query_count = 0
            self._tcp_query_count = 0

    # -- records ---------------------------------------------------------------------------

    def add(self, name: str, rtype: RType, rdata_text: str, ttl: int = 300) -> None:
        """Add one record, e.g. `add("example.com", "CAA", '0 issue "letsencrypt.org"')`.

        Relative names in the data are taken as absolute. A name holds at most one CNAME and
        nothing else beside it; adding a CNAME or DNAME replaces the one there. The TTL applies to
        the whole set, as DNS requires.
        """
        owner = _parse_name(name)
        type_code = _parse_type(rtype)
        wire, target = _encode_rdata(type_code, rdata_text)
        with self._lock:
            self._put(owner, type_code, wire, target, ttl)

    def remove(self, name: str, rtype: RType | None = None) -> None:
        """Remove the records of one type at a name, or all of them when no type is given."""
        owner = _parse_name(name)
        type_code = None if rtype is None else _parse_type(rtype)
        with self._lock:
            node = self._nodes.get(owner)
            if node is None:
                return
            if type_code is None:
                node.clear()
            else:
                node.pop(type_code, None)
            if not node:
                self._forget_node(owner)

    def set_servfail(self, name: str, rtype: RType | None = None) -> None:
        """Answer SERVFAIL for this exact name (for one type, or all), also mid-chain."""
        with self._lock:
            self._servfail.add(_failure_key(name, rtype))

    def set_timeout(self, name: str, rtype: RType | None = None) -> None:
        """Never answer queries for this exact name (for one type, or all), also mid-chain."""
        with self._lock:
            self._silent.add(_failure_key(name, rtype))

    def clear_failures(self) -> None:
        """Undo every set_servfail and set_timeout."""
        with self._lock:
            self._servfail.clear()
            self._silent.clear()

    def clear(self) -> None:
        """Forget all records and failures (the query count is kept; see reset_query_count)."""
        with self._lock:
            self._nodes.clear()
            self._population.clear()
            self._servfail.clear()
            self._silent.clear()

    def load_zone(self, text: str, origin: str, default_ttl: int = 300) -> None:
        """Add the records of zone-file text. Relative names are relative to `origin`.

        `$ORIGIN` and `$TTL` work as in any zone file; names outside `origin` are refused
        rather than silently dropped, since a test that loads them surely meant them.
        """
        zone_origin = _parse_name(origin)
        manager = _ZoneTextManager(zone_origin)
        with manager.writer(True) as transaction:  # type: ignore[no-untyped-call]
            tokenizer = dns.tokenizer.Tokenizer(text, "<zone>")
            reader = dns.zonefile.Reader(
                tokenizer,
                dns.rdataclass.IN,
                transaction,
                allow_directives={"$ORIGIN", "$TTL"},
                default_ttl=default_ttl,
            )
            # The reader sees the root as its zone, so that it drops no name; relative names
            # still start from the zone's origin.
            reader.current_origin = zone_origin
            reader.last_name = zone_origin
            try:
                reader.read()
            except dns.exception.DNSException as error:
                raise ValueError(f"cannot load zone {origin}: {error}") from error
        for rrset in manager.rrsets:
            if not rrset.name.is_subdomain(zone_origin):
                raise ValueError(f"cannot load zone {origin}: {rrset.name} is outside it")
        with self._lock:
            for rrset in manager.rrsets:
                for rdata in rrset:
                    wire = _to_wire(rdata)
                    self._put(rrset.name, int(rrset.rdtype), wire, _alias_target(rdata), rrset.ttl)

    def _put(
        self,
        owner: dns.name.Name,
        type_code: int,
        wire: bytes,
        target: dns.name.Name | None,
        ttl: int,
    ) -> None:
        node = self._nodes.get(owner, {})
        others = set(node) - {type_code}
        if (type_code == _CNAME and others) or (type_code != _CNAME and _CNAME in node):
            raise ValueError(f"{owner} cannot hold a CNAME and other records")
        if owner not in self._nodes:
            self._nodes[owner] = node
            for ancestor in _self_and_ancestors(owner):
                self._population[ancestor] += 1
        if type_code in (_CNAME, _DNAME):
            node[type_code] = _RRset(ttl, [wire], target)
            return
        rrset = node.setdefault(type_code, _RRset(ttl))
        rrset.ttl = ttl
        if wire not in rrset.rdatas:
            rrset.rdatas.append(wire)

    def _forget_node(self, owner: dns.name.Name) -> None:
        del self._nodes[owner]
        for ancestor in _self_and_ancestors(owner):
            self._population[ancestor] -= 1
            if self._population[ancestor] <= 0:
                del self._population[ancestor]

    # -- answering -------------------------------------------------------------------------

    def respond(self, message: bytes, over_tcp: bool) -> bytes | None:
        """The wire-format reply to one wire-format query, or None to stay silent."""
        with self._lock:
            self._query_count += 1
            if over_tcp:
                self._tcp_query_count += 1
        try:
            request = DNSRecord.parse(message)
        except Exception:  # dnslib raises several types on garbage; all mean the same here
            return _format_error(message)
        header = request.header
        if header.qr or len(request.questions) != 1:
            return _format_error(message)
        reply = DNSRecord(
            DNSHeader(id=header.id, qr=1, opcode=header.opcode, rd=header.rd, ra=1),
            q=request.q,
        )
        client_payload = _edns_payload(request)
        if client_payload is not None:
            reply.add_ar(EDNS0(udp_len=_OUR_EDNS_PAYLOAD))
        question = request.q
        if header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
            return bytes(reply.pack())
        if question.qclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            reply.header.rcode = RCODE.REFUSED
            return bytes(reply.pack())
        qname = dns.name.Name([*question.qname.label, b""])
        with self._lock:
            outcome = self._resolve(qname, int(question.qtype))
        if outcome is _NO_ANSWER:
            return None
        reply.header.rcode = outcome.rcode
        for owner, type_code, ttl, wire in outcome.answer:
            reply.add_answer(_dnslib_rr(owner, type_code, ttl, wire))
        for owner, type_code, ttl, wire in outcome.authority:
            reply.add_auth(_dnslib_rr(owner, type_code, ttl, wire))
        packed = bytes(reply.pack())
        limit = _TCP_MESSAGE_LIMIT if over_tcp else max(_CLASSIC_UDP_LIMIT, client_payload or 0)
        if len(packed) <= limit:
            return packed
        # Too big: send the question alone with TC set, so the client asks again over TCP.
        reply.rr, reply.auth = [], []
        reply.header.tc = 1
        return bytes(reply.pack())

    def _resolve(self, qname: dns.name.Name, qtype: int) -> _Answer | None:
        chain: list[tuple[dns.name.Name, int, int, bytes]] = []
        visited: set[dns.name.Name] = set()
        current = qname
        for _ in range(_MAX_ALIAS_STEPS):
            if (current, None) in self._silent or (current, qtype) in self._silent:
                return _NO_ANSWER
            if (current, None) in self._servfail or (current, qtype) in self._servfail:
                return _Answer(RCODE.SERVFAIL)
            visited.add(current)
            redirected = self._dname_redirect(current)
            if redirected is not None:
                dname_owner, dname_set = redirected
                assert dname_set.target is not None
                try:
                    synthesized = current.relativize(dname_owner).derelativize(dname_set.target)
                except dns.name.NameTooLong:
                    return _Answer(RCODE.YXDOMAIN, tuple(chain))
                chain.append((dname_owner, _DNAME, dname_set.ttl, dname_set.rdatas[0]))
                chain.append((current, _CNAME, dname_set.ttl, _name_wire(synthesized)))
                if synthesized in visited:
                    return _Answer(RCODE.NOERROR, tuple(chain))
                current = synthesized
                continue
            node = self._nodes.get(current)
            if node is None:
                exists = self._population[current] > 0
                rcode = RCODE.NOERROR if exists else RCODE.NXDOMAIN
                return _Answer(rcode, tuple(chain), self._negative_authority(current))
            if qtype == _ANY:
                return _Answer(RCODE.NOERROR, tuple(chain) + _records_of(current, node))
            rrset = node.get(qtype)
            if rrset is not None:
                records = [(current, qtype, rrset.ttl, wire) for wire in rrset.rdatas]
                return _Answer(RCODE.NOERROR, tuple(chain + records))
            cname = node.get(_CNAME)
            if cname is None:
                return _Answer(RCODE.NOERROR, tuple(chain), self._negative_authority(current))
            assert cname.target is not None
            chain.append((current, _CNAME, cname.ttl, cname.rdatas[0]))
            if cname.target in visited:
                return _Answer(RCODE.NOERROR, tuple(chain))
            current = cname.target
        return _Answer(RCODE.SERVFAIL, tuple(chain))

    def _dname_redirect(self, name: dns.name.Name) -> tuple[dns.name.Name, _RRset] | None:
        """The DNAME that rewrites `name`, if one of its proper ancestors holds one.

        The DNAME closest to the root wins: everything below a DNAME is hidden by it.
        """
        for ancestor in reversed(_self_and_ancestors(name)[1:]):
            dname = self._nodes.get(ancestor, {}).get(_DNAME)
            if dname is not None:
                return ancestor, dname
        return None

    def _negative_authority(
        self, name: dns.name.Name
    ) -> tuple[tuple[dns.name.Name, int, int, bytes], ...]:
        """The SOA of the closest enclosing zone, which tells resolvers how long to cache."""
        for ancestor in _self_and_ancestors(name):
            soa = self._nodes.get(ancestor, {}).get(_SOA)
            if soa is not None:
                return ((ancestor, _SOA, soa.ttl, soa.rdatas[0]),)
        return ()


class _ZoneTextManager(dns.zonefile.RRSetsReaderManager):
    """Collects the records of zone text for load_zone.

    dnspython's zone reader silently skips names outside its zone's origin, so the reader is
    told the zone is the root (load_zone then refuses outside names itself), while the check that
    an SOA sits at the zone's apex still sees the real origin.
    """

    def __init__(self, zone_origin: dns.name.Name) -> None:
        super().__init__(dns.name.root, False, dns.rdataclass.IN)
        self._zone_origin = zone_origin

    def origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        return dns.name.root, False, self._zone_origin


# -- helpers: names, types and record data ------------------------------------------------------


def _parse_name(name: str) -> dns.name.Name:
    try:
        return dns.name.from_text(name, origin=dns.name.root)
    except dns.exception.DNSException as error:
        raise ValueError(f"not a valid DNS name: {name!r} ({error})") from error


def _parse_type(rtype: RType) -> int:
    try:
        code = (
            dns.rdatatype.from_text(rtype)
            if isinstance(rtype, str)
            else dns.rdatatype.RdataType.make(rtype)
        )
    except (dns.exception.DNSException, ValueError) as error:
        raise ValueError(f"unknown record type: {rtype!r}") from error
    if dns.rdatatype.is_metatype(code) or code == _OPT:
        raise ValueError(f"{rtype!r} is a query type, not a record type")
    return int(code)


def _failure_key(name: str, rtype: RType | None) -> tuple[dns.name.Name, int | None]:
    return _parse_name(name), None if rtype is None else _parse_type(rtype)


def _encode_rdata(type_code: int, text: str) -> tuple[bytes, dns.name.Name | None]:
    """Wire bytes of the record data, and the target when it is an alias."""
    rdtype = dns.rdatatype.RdataType.make(type_code)
    tokens = text.split()
    if tokens[:1] == ["\\#"]:
        wire = _generic_rdata(tokens[1:], text)
        if type_code in (_CNAME, _DNAME):
            rdata = dns.rdata.from_wire(dns.rdataclass.IN, rdtype, wire, 0, len(wire))
            return wire, _alias_target(rdata)
        return wire, None
    try:
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, text, origin=dns.name.root, relativize=False
        )
    except (dns.exception.DNSException, ValueError) as error:
        type_name = dns.rdatatype.to_text(rdtype)
        raise ValueError(f"cannot parse {type_name} data {text!r}: {error}") from error
    return _to_wire(rdata), _alias_target(rdata)


def _generic_rdata(tokens: list[str], text: str) -> bytes:
    """RFC 3597 `\\# LENGTH HEX...`, taken as is so that malformed data can be served."""
    try:
        length = int(tokens[0])
        data = bytes.fromhex("".join(tokens[1:]))
    except (IndexError, ValueError) as error:
        raise ValueError(f"bad generic record data {text!r}: want '\\# LENGTH HEX'") from error
    if len(data) != length:
        raise ValueError(f"bad generic record data {text!r}: {len(data)} bytes, not {length}")
    return data


def _to_wire(rdata: dns.rdata.Rdata) -> bytes:
    wire = rdata.to_wire()
    assert wire is not None  # to_wire returns the bytes when given no file
    return wire


def _name_wire(name: dns.name.Name) -> bytes:
    wire = name.to_wire()
    assert wire is not None  # to_wire returns the bytes when given no file
    return wire


def _alias_target(rdata: dns.rdata.Rdata) -> dns.name.Name | None:
    if isinstance(rdata, dns.rdtypes.ANY.CNAME.CNAME | dns.rdtypes.ANY.DNAME.DNAME):
        return rdata.target
    return None


def _self_and_ancestors(name: dns.name.Name) -> list[dns.name.Name]:
    """The name, its parent, ... up to and including the root."""
    names = [name]
    while names[-1] != dns.name.root:
        names.append(names[-1].parent())
    return names


def _records_of(
    owner: dns.name.Name, node: dict[int, _RRset]
) -> tuple[tuple[dns.name.Name, int, int, bytes], ...]:
    return tuple(
        (owner, type_code, rrset.ttl, wire)
        for type_code, rrset in node.items()
        for wire in rrset.rdatas
    )


# -- helpers: messages ---------------------------------------------------------------------------


def _dnslib_rr(owner: dns.name.Name, type_code: int, ttl: int, wire: bytes) -> RR:
    label = DNSLabel(list(owner.labels[:-1]))  # dnslib spells the root label implicitly
    return RR(rname=label, rtype=type_code, rclass=1, ttl=ttl, rdata=RD(wire))


def _edns_payload(request: DNSRecord) -> int | None:
    """The UDP size the client announced with EDNS, or None when it sent no OPT record."""
    for record in request.ar:
        if record.rtype == QTYPE.OPT:
            return int(record.rclass)
    return None


def _format_error(message: bytes) -> bytes | None:
    """FORMERR for a message with a readable header; silence for anything shorter."""
    if len(message) < 12:
        return None
    query_id, flags = struct.unpack("!HH", message[:4])
    if flags & 0x8000:  # a response: never answer those, or two servers could ping-pong
        return None
    reply_flags = 0x8000 | (flags & 0x7900) | 0x0080 | int(RCODE.FORMERR)
    return struct.pack("!HHHHHH", query_id, reply_flags, 0, 0, 0, 0)


# -- sockets ---------------------------------------------------------------------------------


class _UDPHandler(socketserver.BaseRequestHandler):
    server: _UDPServer

    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.dns.respond(data, over_tcp=False)
        if reply is not None:
            sock.sendto(reply, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.settimeout(_TCP_IDLE_SECONDS)
        try:
            while True:
                prefix = _receive_exactly(connection, 2)
                if prefix is None:
                    return
                message = _receive_exactly(connection, struct.unpack("!H", prefix)[0])
                if message is None:
                    return
                reply = self.server.dns.respond(message, over_tcp=True)
                if reply is not None:
                    connection.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return  # the client went away or went quiet; nothing to tell anyone


def _receive_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class _UDPServer(socketserver.UDPServer):
    # Answers are computed in memory, so one thread serves UDP without queuing anyone for long.
    max_packet_size = 65535

    def __init__(self, address: tuple[str, int], dns_server: LocalDNSServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.dns = dns_server
        super().__init__(address, _UDPHandler)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dns_server: LocalDNSServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.dns = dns_server
        super().__init__(address, _TCPHandler)


def _bind_pair(host: str, port: int, dns_server: LocalDNSServer) -> tuple[_UDPServer, _TCPServer]:
    """Bind UDP and TCP to one port; with port 0 the system picks one free for both."""
    attempts = 20 if port == 0 else 1
    for attempt in range(attempts):
        udp = _UDPServer((host, port), dns_server)
        chosen = udp.server_address[1]
        try:
            return udp, _TCPServer((host, chosen), dns_server)
        except OSError:
            udp.server_close()
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


__all__ = ["LocalDNSServer"]
