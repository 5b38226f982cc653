"""Caddy with the scale fixture's certificates in its file storage: start, first handshakes, memory.

Used by bench/million_edge.py (`--caddy K`). The first K domains' certificates and keys are read
from the fixture's store (keys decrypted with the fixture's master key) and laid out where
CertMagic looks (bench/edge_caddy.py), and Caddy runs the shared Caddyfile (on-demand TLS,
the ACME CA a port that refuses connections) exactly as in the edge benchmark. With on-demand
TLS Caddy reads a certificate from storage at the name's first handshake and keeps it in its
cache (CertMagic's default capacity: 10,000 certificates).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import psycopg

from bench import million_fixture
from bench.edge_caddy import AskEndpoint, _adapted_config, caddy_env, issuer_key
from bench.edge_proc import LOOPBACK, DeadPort, stop
from bench.million_edge import EdgeFigures, measure
from linkcert.keys import MasterKeys
from linkcert.keystore import cert_key_context
from linkcert.testbed.waiting import free_port


def write_storage(fixture: million_fixture.Fixture, count: int, storage: Path, url: str) -> None:
    """Caddy's storage for domains 1..count, read from the fixture's store."""
    keys = MasterKeys.parse(million_fixture.MASTER_KEY)
    base = storage / "certificates" / issuer_key(url)
    conninfo = fixture.url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn, conn.cursor(name="caddy") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            "SELECT d.name, c.chain_pem, c.key_encrypted FROM domains d"
            " JOIN certificates c ON c.id = d.current_certificate_id"
            " WHERE d.id <= %s",
            (count,),
        )
        for name, chain_pem, blob in cursor:
            folder = base / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.crt").write_text(chain_pem)
            key = keys.decrypt(bytes(blob), cert_key_context(name))
            (folder / f"{name}.key").write_bytes(key)
            meta = {"sans": [name], "issuer_data": {"url": "", "ca": url}}
            (folder / f"{name}.json").write_text(json.dumps(meta))


def run_caddy(
    fixture: million_fixture.Fixture, count: int, run_dir: Path, args: argparse.Namespace
) -> EdgeFigures:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "root.pem").write_bytes(fixture.root_pem)
    dead_ca = DeadPort()
    ask = AskEndpoint()
    https_port = free_port()
    directory_url = f"https://{LOOPBACK}:{dead_ca.port}/dir"
    storage = run_dir / "storage"
    written = time.monotonic()
    write_storage(fixture, count, storage, directory_url)
    print(f"caddy storage for {count} names written in {time.monotonic() - written:.0f} s")
    env = caddy_env(run_dir, directory_url, run_dir / "root.pem", https_port, storage, ask.url)
    config_path = run_dir / "caddy.json"
    config_path.write_text(json.dumps(_adapted_config(env, https_port)))
    log = (run_dir / "caddy.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        ["caddy", "run", "--config", str(config_path)], env=env, stdout=log, stderr=log
    )
    figures = EdgeFigures("caddy", count)
    try:
        pid = process.pid
        measure(figures, lambda: pid, process, https_port, fixture, run_dir, args, started, count)
        figures.steady["ask_consulted"] = ask.asked
    finally:
        stop(process)
        log.close()
        ask.close()
        dead_ca.close()
    return figures
