"""The edge benchmark's own pieces that decide what it measures: Caddy's storage layout and the
certificates both sides load."""

from __future__ import annotations

import json
from pathlib import Path

from bench.edge_caddy import issuer_key, write_storage
from bench.edge_pki import bench_names, make_pki
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
