"""Caddy as the edge benchmark's peer: the shared Caddyfile, certificates preloaded in storage.

Caddy's on-demand TLS looks for a name's certificate in its storage before it would ask the CA.
CertMagic (Caddy 2.6) keeps each certificate under a folder per issuer:

    <storage>/certificates/<issuer key>/<name>/<name>.crt    chain, leaf first (PEM)
                                               /<name>.key    private key (PEM)
                                               /<name>.json   {"sans": [...], "issuer_data": {}}

where the issuer key of an ACME CA is its directory URL's host and path, made file-safe:
`https://127.0.0.1:41234/dir` → `127.0.0.1-41234-dir`. The benchmark points the CA at a port that
refuses connections, so a handshake that succeeds was served from storage.

The Caddyfile is used from its shared path through `caddy adapt`; two changes are made to the
JSON it adapts to, both to measure the same thing on both sides:
- TLS session tickets off: otherwise `wrk` resumes sessions and the "full handshake" run would
  measure resumptions (linkcert's edge sends no tickets);
- listen on 127.0.0.1 only and no HTTP→HTTPS redirect listener: the benchmark stays on loopback.

With `upstream` (bench/proxy.py), the Caddyfile's `respond` becomes a `reverse_proxy` to that
origin: Caddy's on-demand TLS in front of an origin, as linkcert's proxy mode is.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.edge_pki import BenchPki
from bench.edge_proc import LOOPBACK, DeadPort, stop, wait_for_port
from linkcert.testbed.waiting import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
# The peer's configuration is shared with other benchmarks: used from where it lives, never copied.
CADDYFILE = (REPO_ROOT / "../shared/bench/caddy-peer.Caddyfile").resolve()


def issuer_key(directory_url: str) -> str:
    """CertMagic's storage folder name for an ACME CA (see the module docstring)."""
    parts = urlsplit(directory_url)
    key = parts.netloc
    path = parts.path.replace("/", "-").replace("\\", "-").strip("-")
    if path:
        key += "-" + path
    return key.lower().replace(":", "-")


def write_storage(storage: Path, directory_url: str, pki: BenchPki, names: list[str]) -> None:
    """Lay the certificates for `names` out where Caddy's on-demand TLS finds them."""
    issuer = issuer_key(directory_url)
    for name in names:
        folder = storage / "certificates" / issuer / name
        folder.mkdir(parents=True, exist_ok=True)
        os.link(pki.chain_path(name), folder / f"{name}.crt")
        os.link(pki.key_path(name), folder / f"{name}.key")
        meta = {"sans": [name], "issuer_data": {"url": "", "ca": directory_url}}
        (folder / f"{name}.json").write_text(json.dumps(meta))


class AskEndpoint:
    """The `ask` URL on-demand TLS consults before it would obtain a certificate: says yes and
    counts, so the report can say whether Caddy ever got as far as wanting to issue."""

    def __init__(self) -> None:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.asked += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.asked = 0
        self._server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}/ask"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _reverse_proxy_instead_of_respond(node: Any, upstream: str) -> None:
    """Replace every `static_response` handler in the adapted config with a reverse proxy."""
    if isinstance(node, list):
        for item in node:
            _reverse_proxy_instead_of_respond(item, upstream)
    elif isinstance(node, dict):
        if node.get("handler") == "static_response":
            node.clear()
            node.update({"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]})
            return
        for value in node.values():
            _reverse_proxy_instead_of_respond(value, upstream)


def caddy_env(
    run_dir: Path,
    directory_url: str,
    root_pem: Path,
    https_port: int,
    storage: Path,
    ask_url: str,
) -> dict[str, str]:
    """The environment the peer's Caddyfile reads, with Caddy's home inside the run."""
    home = run_dir / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # Caddy and its libraries keep state under the home directory: keep it in the run.
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "ACME_DIRECTORY": directory_url,
        "ACME_CA_ROOT": str(root_pem),
        "HTTP_PORT": str(free_port()),
        "HTTPS_PORT": str(https_port),
        "CADDY_STORAGE": str(storage),
        "ASK_URL": ask_url,
    }


def _adapted_config(
    env: dict[str, str], https_port: int, upstream: str | None = None
) -> dict[str, Any]:
    adapted = subprocess.run(
        ["caddy", "adapt", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    config: dict[str, Any] = json.loads(adapted.stdout)
    apps = config["apps"]
    apps["tls"]["session_tickets"] = {"disabled": True}
    for server in apps["http"]["servers"].values():
        server["listen"] = [f"{LOOPBACK}:{https_port}"]
        server.setdefault("automatic_https", {})["disable_redirects"] = True
    if upstream is not None:
        _reverse_proxy_instead_of_respond(apps["http"], upstream)
    return config


class CaddyPeer:
    """One Caddy process serving `names` from preloaded storage, on a loopback HTTPS port."""

    def __init__(
        self, run_dir: Path, pki: BenchPki, names: list[str], *, upstream: str | None = None
    ) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self._dead_ca = DeadPort()
        self._ask = AskEndpoint()
        self.https_port = free_port()
        directory_url = f"https://{LOOPBACK}:{self._dead_ca.port}/dir"
        storage = run_dir / "storage"
        write_storage(storage, directory_url, pki, names)
        env = caddy_env(
            run_dir, directory_url, pki.root_pem, self.https_port, storage, self._ask.url
        )
        config_path = run_dir / "caddy.json"
        config = _adapted_config(env, self.https_port, upstream)
        config_path.write_text(json.dumps(config, indent=1))
        self._log = (run_dir / "caddy.log").open("wb")
        self.log_path = run_dir / "caddy.log"
        self.process = subprocess.Popen(
            ["caddy", "run", "--config", str(config_path)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.https_port, self.process)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def asked(self) -> int:
        """How often Caddy consulted the ask endpoint (it does before obtaining)."""
        return self._ask.asked

    def issuance_log_lines(self) -> int:
        """Lines of Caddy's log about obtaining a certificate or reaching the CA: none is
        expected, every certificate being in storage already."""
        text = self.log_path.read_text(errors="replace").lower()
        words = ("obtain", "acme_client", "issuing", "renew")
        return sum(1 for line in text.splitlines() if any(word in line for word in words))

    def close(self) -> None:
        stop(self.process)
        self._log.close()
        self._ask.close()
        self._dead_ca.close()
