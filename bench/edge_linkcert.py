"""linkcert's edge as the benchmark runs it: a child process with the benchmark's certificates.

    python -m bench.edge_linkcert --names FILE --pki DIR --port PORT [--workers N]
                                  [--upstream http://HOST:PORT]

Certificates are put into a CertificateCache the way the service fills it from the store, once,
before the edge pool forks its workers; each worker then builds a name's TLS context at its
first handshake there. Clicks go to a sink that drops them: the store is not what is measured.
With `--upstream`, the edge runs in proxy mode and relays every request to that origin
(bench/proxy.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.edge_pki import BenchPki
from bench.edge_proc import LOOPBACK, stop, wait_for_port
from linkcert.edge import CertificateCache, Edge, EdgeSettings, ProxySettings
from linkcert.edge.certs import DEFAULT_MAX_CONTEXTS
from linkcert.origins import parse_origin
from linkcert.service.prefork import EdgePool, PoolSettings, PoolWorker, WorkerMain
from linkcert.testbed.waiting import free_port
from linkcert.tracking import Click, make_token, tracking_key_from_secret

TRACKING_SECRET = "edge-bench-tracking-secret-" + "z" * 32
DESTINATION = "https://shop.example/spring-sale?utm_source=email&utm_campaign=bench"
LINK_ID = 4_200_042


def tracked_path(name: str) -> str:
    """The path of a real tracked link minted for `name`."""
    token = make_token(tracking_key_from_secret(TRACKING_SECRET), name, LINK_ID, DESTINATION)
    return f"/c/{token}"


def load_cache(
    pki: BenchPki, names: Sequence[str], max_contexts: int = DEFAULT_MAX_CONTEXTS
) -> CertificateCache:
    cache = CertificateCache(max_contexts=max_contexts)
    for name in names:
        cache.put(name, pki.chain_path(name).read_bytes(), pki.key_path(name).read_bytes(), 1)
    return cache


def _worker_main(cache: CertificateCache, upstream: str | None = None) -> WorkerMain:
    proxy = None
    if upstream is not None:
        proxy = ProxySettings(mode="proxy", upstreams=(parse_origin(upstream),))

    async def serve(worker: PoolWorker) -> None:
        def discard(batch: Sequence[Click]) -> None:
            pass

        async def no_challenge(token: str) -> str | None:
            return None

        edge = Edge(
            tracking_key=tracking_key_from_secret(TRACKING_SECRET),
            certificates=cache,
            challenge_lookup=no_challenge,
            click_sink=discard,
            settings=EdgeSettings(https=worker.https_socket, proxy=proxy),
        )
        async with edge:
            await worker.stopping.wait()

    return serve


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--names", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-contexts", type=int, default=DEFAULT_MAX_CONTEXTS)
    parser.add_argument("--upstream", help="proxy mode: relay every request to this origin")
    args = parser.parse_args(argv)
    names = args.names.read_text().split()
    # Loaded once before the workers fork, as the service would fill it from the store.
    cache = load_cache(BenchPki(args.pki, tuple(names)), names, args.max_contexts)
    pool = EdgePool(
        PoolSettings(workers=args.workers, https=f"{LOOPBACK}:{args.port}"),
        _worker_main(cache, args.upstream),
    )
    sys.exit(pool.run())


class LinkcertEdge:
    """The edge child process, serving `names` on a loopback HTTPS port."""

    def __init__(
        self,
        run_dir: Path,
        pki: BenchPki,
        names: Sequence[str],
        *,
        workers: int = 1,
        max_contexts: int = DEFAULT_MAX_CONTEXTS,
        upstream: str | None = None,
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        names_file = run_dir / "names.txt"
        names_file.write_text("\n".join(names))
        self.https_port = free_port()
        self._log = (run_dir / "edge.log").open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.edge_linkcert",
                "--pki",
                str(pki.directory),
                "--names",
                str(names_file),
                "--port",
                str(self.https_port),
                "--workers",
                str(workers),
                "--max-contexts",
                str(max_contexts),
                *(["--upstream", upstream] if upstream is not None else []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for_port(self.https_port, self.process, timeout=300)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        stop(self.process)
        self._log.close()


if __name__ == "__main__":
    main()
