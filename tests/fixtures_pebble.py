"""pytest fixtures around a real Pebble ACME server.

Load them with `pytest_plugins = ["tests.fixtures_pebble"]`. Fixtures (module scope unless
said otherwise):

- `pebble`: a running PebbleServer with Pebble's defaults (5% of nonces rejected, 50% of valid
  authorizations reused) and no validation sleeps.
- `pebble_factory`: starts more PebbleServers with other options (`eab_required=True`,
  `nonce_reject_percent=50`, ...); all are stopped at the end of the module.
- `pebble_http_port`: where Pebble's HTTP-01 validator connects. Defaults to the port of
  `acme_http_responder`; a module testing the edge overrides it with the edge's HTTP port.
- `pebble_dns_server`: "HOST:PORT" of the DNS server Pebble resolves names with; None (the
  system resolver) unless a module overrides it with its loopback DNS server.
- `acme_http_responder`: a ChallengeResponder standing in for the edge: serves the key
  authorizations published on it at /.well-known/acme-challenge/<token>, 404 otherwise.
- `pebble_acme_settings` (function scope): AcmeSettings for `pebble`, with short polls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from linkcert.acme import AcmeSettings
from linkcert.testbed import ChallengeResponder, PebbleServer


@pytest.fixture(scope="module")
def acme_http_responder() -> Iterator[ChallengeResponder]:
    with ChallengeResponder() as responder:
        yield responder


@pytest.fixture(scope="module")
def pebble_http_port(acme_http_responder: ChallengeResponder) -> int:
    return acme_http_responder.port


@pytest.fixture(scope="module")
def pebble_dns_server() -> str | None:
    return None


@pytest.fixture(scope="module")
def pebble_factory(
    tmp_path_factory: pytest.TempPathFactory,
    pebble_http_port: int,
    pebble_dns_server: str | None,
) -> Iterator[Callable[..., PebbleServer]]:
    started: list[PebbleServer] = []

    def start(**options: Any) -> PebbleServer:
        options.setdefault("http_port", pebble_http_port)
        options.setdefault("dns_server", pebble_dns_server)
        options.setdefault("workdir", tmp_path_factory.mktemp("pebble"))
        server = PebbleServer(**options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def pebble(pebble_factory: Callable[..., PebbleServer]) -> PebbleServer:
    return pebble_factory()


@pytest.fixture
def pebble_acme_settings(pebble: PebbleServer) -> AcmeSettings:
    return pebble.acme_settings()
