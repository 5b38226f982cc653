"""An HTTPS front for Pebble that answers `rateLimited` to new orders for chosen names.

Pebble 2.4 has no rate limits of its own. The front terminates TLS with a certificate of its
own CA and relays every request to Pebble unchanged, keeping the Host header: Pebble writes
its URLs (and checks the JWS `url`) with the host the client asked for, so the whole ACME
exchange goes through the front. A new order for a name in `limited` gets, instead of
Pebble's answer, HTTP 429 with a `urn:ietf:params:acme:error:rateLimited` problem, the
`Retry-After` given and a fresh nonce from Pebble, as a CA's rate limiter answers.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from linkcert.testbed.pebble import PebbleServer
from linkcert.testbed.pki import ONE_DAY, ca_certificate, leaf_certificate, private_key_pem

_HOP_BY_HOP = {"connection", "transfer-encoding", "content-length", "content-encoding", "host"}


class RateLimitingFront:
    def __init__(self, pebble: PebbleServer, workdir: Path) -> None:
        self.pebble = pebble
        self.limited: dict[str, int] = {}  # name -> Retry-After seconds
        self.refused: list[str] = []
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = ca_certificate("linkcert test front CA", ca_key, path_length=0, lifetime=7 * ONE_DAY)
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = leaf_certificate(
            key,
            ("localhost",),
            ca,
            ca_key,
            addresses=("127.0.0.1",),
            subject="localhost",
            lifetime=7 * ONE_DAY,
        )
        workdir.mkdir(parents=True, exist_ok=True)
        self.ca_bundle_path = workdir / "front-ca.pem"
        self.ca_bundle_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_path, key_path = workdir / "front-cert.pem", workdir / "front-key.pem"
        cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(private_key_pem(key))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}/dir"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _pebble_url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.pebble.acme_port}{path}"

    def _nonce(self) -> str:
        answer = requests.head(
            self._pebble_url("/nonce-plz"), verify=str(self.pebble.ca_bundle_path), timeout=10
        )
        return answer.headers["Replay-Nonce"]

    def _limited_name(self, body: bytes) -> str | None:
        try:
            payload = json.loads(body)["payload"]
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            names = [identifier["value"] for identifier in data.get("identifiers", [])]
        except (ValueError, KeyError, TypeError):
            return None
        return next((name for name in names if name in self.limited), None)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._relay(b"")

            def do_HEAD(self) -> None:
                self._relay(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                name = front._limited_name(body) if self.path == "/order-plz" else None
                if name is not None:
                    front.refused.append(name)
                    problem = {
                        "type": "urn:ietf:params:acme:error:rateLimited",
                        "detail": f"too many certificates for {name} recently",
                        "status": 429,
                    }
                    self._answer(
                        429,
                        {
                            "Content-Type": "application/problem+json",
                            "Retry-After": str(front.limited[name]),
                            "Replay-Nonce": front._nonce(),
                        },
                        json.dumps(problem).encode(),
                    )
                    return
                self._relay(body)

            def _relay(self, body: bytes) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Host"] = self.headers.get("Host", "")
                answer = requests.request(
                    self.command,
                    front._pebble_url(self.path),
                    headers=headers,
                    data=body or None,
                    verify=str(front.pebble.ca_bundle_path),
                    timeout=30,
                    allow_redirects=False,
                )
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
                self._answer(answer.status_code, kept, answer.content)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler
