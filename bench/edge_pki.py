"""A throwaway certificate authority and one certificate per benchmark name.

Shaped like Let's Encrypt's ECDSA issuance: a P-384 root, a P-384 intermediate, and P-256 leaf
keys, each leaf naming one domain. Both servers in the benchmark load the very same files, so
neither gets smaller certificates or a cheaper signature than the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from linkcert.testbed.pki import ONE_DAY, ca_certificate, leaf_certificate, private_key_pem

NAME_SUFFIX = "edge-bench.test"  # .test is reserved for testing (RFC 6761): never a real host
# Long enough that neither server thinks a certificate is due for renewal during the run.
LEAF_LIFETIME = 90 * ONE_DAY
# From yesterday (every certificate here starts a day back) until a year from today.
CA_LIFETIME = 366 * ONE_DAY


def bench_names(count: int) -> list[str]:
    """`n00000.edge-bench.test`, ...: distinct names, all the same length."""
    return [f"n{i:05d}.{NAME_SUFFIX}" for i in range(count)]


@dataclass(frozen=True)
class BenchPki:
    """Where the files are: `root.pem`, and `<name>.crt` (leaf + intermediate), `<name>.key`."""

    directory: Path
    names: tuple[str, ...]

    @property
    def root_pem(self) -> Path:
        return self.directory / "root.pem"

    def chain_path(self, name: str) -> Path:
        return self.directory / "leaves" / f"{name}.crt"

    def key_path(self, name: str) -> Path:
        return self.directory / "leaves" / f"{name}.key"


def make_pki(directory: Path, names: list[str]) -> BenchPki:
    """Create the CA and one leaf per name under `directory`; a few seconds per 10,000."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = ca_certificate(
        "edge bench root",
        root_key,
        path_length=1,
        lifetime=CA_LIFETIME,
        hash_algorithm=hashes.SHA384(),
    )
    intermediate_key = ec.generate_private_key(ec.SECP384R1())
    intermediate = ca_certificate(
        "edge bench intermediate",
        intermediate_key,
        issuer=root,
        issuer_key=root_key,
        path_length=0,
        lifetime=CA_LIFETIME,
        hash_algorithm=hashes.SHA384(),
    )
    intermediate_pem = intermediate.public_bytes(serialization.Encoding.PEM)
    (directory / "leaves").mkdir(parents=True, exist_ok=True)
    pki = BenchPki(directory, tuple(names))
    pki.root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))

    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        # No subject, like Let's Encrypt's current leaves: the name is in the SAN only.
        leaf = leaf_certificate(
            key,
            [name],
            intermediate,
            intermediate_key,
            lifetime=LEAF_LIFETIME,
            hash_algorithm=hashes.SHA384(),
        )
        pki.chain_path(name).write_bytes(
            leaf.public_bytes(serialization.Encoding.PEM) + intermediate_pem
        )
        pki.key_path(name).write_bytes(private_key_pem(key))
    return pki
