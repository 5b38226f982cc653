"""A stand-in for the edge's HTTP-01 answers, for tests and benchmarks of the ACME path alone.

Pebble's validator fetches `http://<domain>:<httpPort>/.well-known/acme-challenge/<token>`;
point `httpPort` at this server's port and publish each challenge before answering it.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from linkcert.acme.orders import CHALLENGE_PATH_PREFIX, Http01Challenge


class ChallengeResponder:
    """Serves published key authorizations (text/plain), 404 for anything else.

    `requests_seen` lists each request as "<host><path>" (host without port), so a test can
    check that the CA came to fetch a token.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._answers: dict[str, str] = {}
        self._lock = threading.Lock()
        self.requests_seen: list[str] = []
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval keeps stop() from waiting half a second.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http01-responder", daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def publish(self, challenge: Http01Challenge) -> None:
        self.publish_token(challenge.token, challenge.key_authorization)

    def publish_token(self, token: str, key_authorization: str) -> None:
        with self._lock:
            self._answers[token] = key_authorization

    def withdraw(self, token: str) -> None:
        with self._lock:
            self._answers.pop(token, None)

    def answer_for(self, path: str) -> str | None:
        if not path.startswith(CHALLENGE_PATH_PREFIX):
            return None
        with self._lock:
            return self._answers.get(path[len(CHALLENGE_PATH_PREFIX) :])

    def record(self, host: str, path: str) -> None:
        with self._lock:
            self.requests_seen.append(f"{host}{path}")

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _handler_for(responder: ChallengeResponder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host = self.headers.get("Host", "").rsplit(":", 1)[0]
            responder.record(host, self.path)
            answer = responder.answer_for(self.path)
            if answer is None:
                self.send_error(404, "no such challenge")
                return
            body = answer.encode("ascii")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the CA polls often; keep test and bench output quiet

    return Handler
