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

# One TLS record carries at most 16 KiB of plaintext, and SSLObject.read() returns at most one
# record's worth, so asking for more gains nothing, while read() allocates the whole size first.
# glibc usually serves 256 KiB from its heap, but not always: in an in-process benchmark every
# such read mapped and unmapped fresh pages and cost more than the rest of the request.
_READ_SIZE = 16 * 1024 + 256


class TlsSession:
    """Bytes from the network in, plaintext out; plaintext in, bytes for the network out."""

    __slots__ = ("_incoming", "_object", "_outgoing", "established", "peer_closed", "server_name")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.established = False
        self.peer_closed = False
        self.server_name: str | None = None

    def receive(self, data: bytes) -> bytes:
        """Take bytes from the network; return the plaintext they complete (perhaps b"").

        Raises ssl.SSLError when the handshake fails or a record is broken; `take_output()`
        then holds the alert to send before closing.
        """
        self._incoming.write(data)
        if not self.established:
            try:
                self._object.do_handshake()
            except ssl.SSLWantReadError:
                return b""
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
