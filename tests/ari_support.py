"""A local ACME Renewal Information endpoint in front of Pebble, which has none.

It serves Pebble's directory with a `renewalInfo` URL added and answers that URL with the window
a test chooses; every other request goes to Pebble directly, as the directory's other URLs are
Pebble's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from linkcert.testbed.pebble import PebbleServer

Window = tuple[datetime, datetime]


class RenewalInfoFront:
    def __init__(self, pebble: PebbleServer) -> None:
        self.pebble = pebble
        # The window for a certificate (by its ARI id); by default a month ahead.
        self.window: Callable[[str], Window] = lambda _: (
            datetime.now(UTC) + timedelta(days=30),
            datetime.now(UTC) + timedelta(days=31),
        )
        self.retry_after = 21600
        self.requested: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def directory_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/dir"

    def start(self) -> RenewalInfoFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _directory(self) -> bytes:
        answer = requests.get(
            self.pebble.directory_url, verify=str(self.pebble.ca_bundle_path), timeout=10
        )
        directory = answer.json()
        directory["renewalInfo"] = self.directory_url.replace("/dir", "/renewalInfo")
        return json.dumps(directory).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/dir":
                    self._send(200, front._directory())
                elif self.path.startswith("/renewalInfo/"):
                    certificate_id = self.path.rsplit("/", 1)[1]
                    front.requested.append(certificate_id)
                    start, end = front.window(certificate_id)
                    body = {
                        "suggestedWindow": {
                            "start": start.isoformat().replace("+00:00", "Z"),
                            "end": end.isoformat().replace("+00:00", "Z"),
                        }
                    }
                    self._send(200, json.dumps(body).encode(), str(front.retry_after))
                else:
                    self._send(404, b"{}")

            def _send(self, status: int, body: bytes, retry_after: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
