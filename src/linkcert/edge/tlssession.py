"""TLS on one connection, driven by hand with an SSLObject over memory buffers.

asyncio's own TLS layer drops whatever OpenSSL wanted to send when a handshake fails, so the
client would see a reset instead of the alert (unrecognized_name, handshake_failure) that tells
it what went wrong. Driving the SSLObject directly sends the alert, lets the edge count failures
by reason, and costs no task or extra protocol object per connection.
"""

from __future__ import annotations

import contextlib
import ssl

from linkcert.edge.certs import DomainContext
from linkcert.edge.tls import LOAD_ATTRIBUTE

# One TLS record carries at most 16 KiB of plaintext, and SSLObject.read() returns at most one
# record's worth, so asking for more gains nothing, while read() allocates the whole size first.
# glibc usually serves 256 KiB from its heap, but not always: in an in-process benchmark every
# such read mapped and unmapped fresh pages and cost more than the rest of the request.
_READ_SIZE = 16 * 1024 + 256
# A ClientHello fits in one TLS record; past this, nothing is kept for a replay.
_MAX_HELLO_BYTES = 64 * 1024


class CertificateWanted(Exception):
    """The handshake stopped for want of the named certificate, which is not in memory.

    If `replayable`, load it and `restart()`; otherwise (or if the load fails) `refuse()`,
    send `take_output()` (the alert) and close.
    """

    def __init__(self, name: str, *, replayable: bool) -> None:
        super().__init__(f"the handshake waits for the certificate of {name}")
        self.name = name
        self.replayable = replayable


class TlsSession:
    """Bytes from the network in, plaintext out; plaintext in, bytes for the network out."""

    __slots__ = (
        "_alert",
        "_context",
        "_hello",
        "_incoming",
        "_object",
        "_outgoing",
        "established",
        "peer_closed",
        "server_name",
    )

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        # What the client sent before the handshake got past choosing a certificate: replayed
        # into a fresh TLS object if that choice had to wait for a load.
        self._hello: bytes | None = b""
        self._alert = b""  # what the stopped attempt would have sent, held back
        self.established = False
        self.peer_closed = False
        self.server_name: str | None = None

    def restart(self) -> None:
        """Begin the handshake again on a fresh TLS object, from the bytes received so far,
        once the certificate that CertificateWanted named has been loaded (or was dropped:
        the new attempt then ends as for any name not served). `receive(b"")` goes on."""
        hello = self._hello or b""
        self._hello = None  # one replay at most
        self._alert = b""
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = self._context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._incoming.write(hello)

    def refuse(self) -> None:
        """Give up on the certificate CertificateWanted named: `take_output()` then holds the
        alert that ends the handshake."""
        self._outgoing.write(self._alert)
        self._alert = b""

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the network; return the plaintext they complete (perhaps b"").

        Raises ssl.SSLError when the handshake fails or a record is broken; `take_output()`
        then holds the alert to send before closing.
        """
        self._incoming.write(data)
        if not self.established:
            hello = self._hello
            if hello is not None:
                hello += data
                self._hello = hello if len(hello) <= _MAX_HELLO_BYTES else None
            try:
                self._object.do_handshake()
            except ssl.SSLWantReadError:
                if hello is not None and self._object.context is not self._context:
                    self._hello = None  # a certificate was chosen: no replay from here on
                return b""
            except ssl.SSLError:
                wanted = getattr(self._object, LOAD_ATTRIBUTE, None)
                if wanted is None:
                    raise
                self._alert = self._outgoing.read()
                raise CertificateWanted(wanted, replayable=hello is not None) from None
            self._hello = None
            self.established = True
            context = self._object.context
            if isinstance(context, DomainContext):
                self.server_name = context.domain
        return self._read_plaintext()

    def _read_plaintext(self) -> bytes:
        chunks = []
        incoming = self._incoming
        tls = self._object
        while True:
            try:
                chunk = tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            if not chunk:
                self.peer_closed = True
                break
            chunks.append(chunk)
            # Stop without provoking SSLWantReadError when nothing is left: the common case.
            if not incoming.pending and not tls.pending():
                break
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def send(self, plaintext: bytes) -> None:
        """Encrypt `plaintext`; the records wait in `take_output()`."""
        self._object.write(plaintext)

    def close_notify(self) -> None:
        """Queue the close_notify alert (without waiting for the peer's)."""
        # unwrap() raises for want of the peer's close_notify, which the edge does not wait for.
        with contextlib.suppress(ssl.SSLError):
            self._object.unwrap()

    def take_output(self) -> bytes:
        """Everything queued for the network: handshake messages, records, alerts."""
        if not self._outgoing.pending:
            return b""
        return self._outgoing.read()
