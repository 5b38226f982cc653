"""The edge benchmark's own pieces that decide what it measures: Caddy's storage layout, the
certificates all sides load, HAProxy's configuration and the table's columns."""

from __future__ import annotations

import json
from pathlib import Path

from bench.edge import LoadRun, SideFigures, table
from bench.edge_caddy import issuer_key, write_storage
from bench.edge_haproxy import crt_list, haproxy_config
from bench.edge_pki import BenchPki, bench_names, make_pki
from cryptography import x509


def test_issuer_key_is_certmagics_folder_name() -> None:
    assert issuer_key("https://127.0.0.1:41234/dir") == "127.0.0.1-41234-dir"
    assert (
        issuer_key("https://acme-v02.api.letsencrypt.org/directory")
        == "acme-v02.api.letsencrypt.org-directory"
    )
    assert issuer_key("https://ca.example/") == "ca.example"


def test_certificates_and_caddy_storage(tmp_path: Path) -> None:
    names = bench_names(3)
    pki = make_pki(tmp_path / "pki", names)
    chain = x509.load_pem_x509_certificates(pki.chain_path(names[1]).read_bytes())
    assert len(chain) == 2
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [names[1]]
    assert chain[0].public_key().curve.name == "secp256r1"  # type: ignore[union-attr]

    url = "https://127.0.0.1:41234/dir"
    write_storage(tmp_path / "storage", url, pki, names)
    folder = tmp_path / "storage" / "certificates" / "127.0.0.1-41234-dir" / names[1]
    assert (folder / f"{names[1]}.crt").read_bytes() == pki.chain_path(names[1]).read_bytes()
    assert (folder / f"{names[1]}.key").read_bytes() == pki.key_path(names[1]).read_bytes()
    meta = json.loads((folder / f"{names[1]}.json").read_text())
    assert meta["sans"] == [names[1]]


def test_haproxy_serves_each_name_its_own_certificate_and_no_other(tmp_path: Path) -> None:
    pki = BenchPki(tmp_path, ("a.edge-bench.test", "b.edge-bench.test"))
    assert crt_list(pki, pki.names).splitlines() == [
        f"{tmp_path}/leaves/a.edge-bench.test.crt a.edge-bench.test",
        f"{tmp_path}/leaves/b.edge-bench.test.crt b.edge-bench.test",
    ]
    config = haproxy_config(port=4443, crt_list_path=tmp_path / "c.crtlist", threads=2)
    assert "nbthread 2\n" in config
    assert "tune.ssl.cachesize 0\n" in config
    bind = next(line for line in config.splitlines() if line.strip().startswith("bind "))
    for option in ("127.0.0.1:4443 ssl", "strict-sni", "alpn http/1.1", "no-tls-tickets"):
        assert option in bind
    assert "http-request redirect location https://example.org/ code 302" in config


def _side(label: str, per_second: float) -> SideFigures:
    run = LoadRun(per_second, 10.0, 0, 5.0, 7.0, 0.5, 10.0)
    return SideFigures(label, handshakes=[run], keep_alive=[run])


def test_table_columns_with_and_without_haproxy() -> None:
    two = table([_side("linkcert", 800), _side("Caddy", 1000)], 100).splitlines()
    assert two[0] == "| | linkcert | Caddy | linkcert/Caddy |"
    assert two[2] == "| full TLS handshakes/s | 800 | 1,000 | 0.80× |"
    assert "within each round (median): full handshakes/s 0.80×" in two[-1]

    three = table(
        [_side("linkcert", 800), _side("Caddy", 1000), _side("HAProxy", 1500)], 100
    ).splitlines()
    assert three[0] == "| | linkcert | Caddy | linkcert/Caddy | HAProxy | HAProxy/Caddy |"
    assert three[1] == "|---|---:|---:|---:|---:|---:|"
    assert three[2] == "| full TLS handshakes/s | 800 | 1,000 | 0.80× | 1,500 | 1.50× |"
    assert "HAProxy/Caddy: full handshakes/s 1.50×" in three[-1]
