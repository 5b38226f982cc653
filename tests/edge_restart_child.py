"""One edge process on a shared port, for tests/test_edge_rolling_restart.py.

    python -m tests.edge_restart_child PORT

Serves HTTP on 127.0.0.1:PORT with SO_REUSEPORT on uvloop, prints "ready" once listening, and
stops gracefully on SIGTERM, then prints the connections it accepted and answered.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

import uvloop

from linkcert.edge import CertificateCache, Edge, EdgeSettings
from linkcert.tracking import Click, tracking_key_from_secret


async def serve(port: int) -> None:
    async def no_challenge(token: str) -> str | None:
        return None

    def discard(batch: Sequence[Click]) -> None:
        pass

    edge = Edge(
        tracking_key=tracking_key_from_secret("restart-test-secret-" + "r" * 32),
        certificates=CertificateCache(),
        challenge_lookup=no_challenge,
        click_sink=discard,
        settings=EdgeSettings(http=f"127.0.0.1:{port}", reuse_port=True, shutdown_timeout=5),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with edge:
        print("ready", flush=True)
        await stop.wait()
    counters = edge.counters
    print(f"accepted {counters.connections_accepted} answered {counters.requests}", flush=True)


if __name__ == "__main__":
    uvloop.run(serve(int(sys.argv[1])))
