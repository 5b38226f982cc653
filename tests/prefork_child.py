"""An edge pool in its own process, for tests/test_edge_pool.py (the pool forks, so it cannot
run inside the test process).

    python -m tests.prefork_child WORKERS LOGFILE

Prints the HTTP port once bound; each worker appends "started <index> <pid>" to LOGFILE when it
serves and "stopped <index> <pid>" after a graceful stop.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from linkcert.edge import CertificateCache, Edge, EdgeSettings
from linkcert.service.prefork import EdgePool, PoolSettings, PoolWorker
from linkcert.tracking import Click, tracking_key_from_secret


def main() -> None:
    workers, log = int(sys.argv[1]), Path(sys.argv[2])

    def note(line: str) -> None:
        # One short append per event: O_APPEND keeps the workers' lines whole.
        with log.open("a") as out:
            out.write(line + "\n")

    async def serve(worker: PoolWorker) -> None:
        def discard(batch: Sequence[Click]) -> None:
            pass

        async def no_challenge(token: str) -> str | None:
            return None

        edge = Edge(
            tracking_key=tracking_key_from_secret("pool-test-secret-" + "p" * 32),
            certificates=CertificateCache(),
            challenge_lookup=no_challenge,
            click_sink=discard,
            settings=EdgeSettings(http=worker.http_socket, shutdown_timeout=2),
        )
        async with edge:
            note(f"started {worker.index} {os.getpid()}")
            await worker.stopping.wait()
        note(f"stopped {worker.index} {os.getpid()}")

    pool = EdgePool(
        PoolSettings(workers=workers, http="127.0.0.1:0", restart_delay=0.1, stop_timeout=10),
        serve,
    )
    pool.bind()
    print(pool.http_port, flush=True)
    sys.exit(pool.run())


if __name__ == "__main__":
    main()
