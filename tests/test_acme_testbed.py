"""The Pebble test bed itself: start, certificates, management API, failures, cleanup."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from linkcert.testbed import PebbleServer, PebbleStartError

pytestmark = pytest.mark.pebble


def test_server_runs_with_its_own_certificates_and_cleans_up() -> None:
    server = PebbleServer(http_port=5002)
    workdir = server.workdir
    with server:
        assert server.running
        for host in ("127.0.0.1", "localhost"):
            url = server.directory_url.replace("127.0.0.1", host)
            trust = ssl.create_default_context(cafile=server.ca_bundle_path)
            directory = httpx.get(url, verify=trust).json()
            assert "newOrder" in directory
        assert server.management_url.startswith("https://127.0.0.1:")
        root = x509.load_pem_x509_certificate(server.root_pem().encode())
        intermediate = x509.load_pem_x509_certificate(server.intermediate_pem().encode())
        intermediate.verify_directly_issued_by(root)
        with pytest.raises(LookupError):
            server.cert_status("0badc0de")
        assert "Starting Pebble" in server.read_log()
        config = server.config_path.read_text()
        assert '"httpPort": 5002' in config
        assert '"ocspResponderURL": ""' in config
    assert not server.running
    assert not workdir.exists()
    server.stop()  # stopping twice is fine


def test_given_workdir_is_kept_with_the_log(tmp_path: Path) -> None:
    with PebbleServer(http_port=5002, workdir=tmp_path, dns_server="127.0.0.1:5353") as server:
        assert "127.0.0.1:5353" in server.read_log()
    assert (tmp_path / "pebble.log").exists()


def test_a_pebble_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(PebbleStartError, match="exited with status 1"):
        PebbleServer(http_port=5002, workdir=tmp_path, binary="/bin/false").start()


def test_missing_binary_and_bad_options_are_reported(tmp_path: Path) -> None:
    with pytest.raises(PebbleStartError, match="install Debian's `pebble`"):
        PebbleServer(http_port=5002, workdir=tmp_path, binary="/nonexistent/pebble").start()
    with pytest.raises(ValueError, match="eab_mac_keys"):
        PebbleServer(http_port=5002, eab_required=True)
    with pytest.raises(RuntimeError, match="start"):
        PebbleServer(http_port=5002, workdir=tmp_path).root_pem()
