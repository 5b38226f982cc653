"""Debian's `pebble` (Let's Encrypt's ACME test server) as a subprocess.

Debian ships the binary without the test certificates of the upstream repository, so each
server gets a throwaway CA and a listener certificate for `localhost`, `127.0.0.1` and `::1`,
made here. Clients trust `ca_bundle_path` for the ACME HTTPS connections; the certificates
Pebble issues chain to another root, fetched with `root_pem()`.

Pebble's HTTP-01 validator connects to `<domain>:<http_port>`, resolving the domain through
`dns_server` when one is given (the system resolver otherwise).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from linkcert.acme.settings import AcmeSettings
from linkcert.testbed.pki import ONE_DAY, ca_certificate, leaf_certificate, private_key_pem
from linkcert.testbed.waiting import free_port, stop_process

DEFAULT_BINARY = "/usr/bin/pebble"
_LISTENER_NAMES = ("localhost",)
_LISTENER_ADDRESSES = ("127.0.0.1", "::1")
# Made afresh for each server start, so any span longer than a run will do.
_LISTENER_LIFETIME = 30 * ONE_DAY
# Pebble binds its ports itself; a port picked free here can be taken by someone else before it
# binds, so a start that fails that way is tried again with new ports.
_START_ATTEMPTS = 3


class PebbleStartError(RuntimeError):
    """Pebble did not start or did not answer; the message ends with the tail of its log."""


@dataclass(frozen=True)
class CertStatus:
    """What Pebble's management API says about one certificate it issued."""

    serial_hex: str
    status: str  # "Valid" or "Revoked", as Pebble spells them
    reason: int | None
    revoked_at: str | None
    certificate_pem: str

    @property
    def revoked(self) -> bool:
        return self.status.lower() == "revoked"


def new_eab_hmac_key() -> str:
    """A random External Account Binding MAC key, base64url without padding as CAs hand out."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")


class PebbleServer:
    """One Pebble process with its own certificates, config, ports and log file.

    Use it as a context manager, or call `start()` and `stop()`.
    """

    def __init__(
        self,
        http_port: int,
        *,
        tls_port: int | None = None,
        dns_server: str | None = None,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        eab_required: bool = False,
        eab_mac_keys: Mapping[str, str] | None = None,
        certificate_validity_seconds: int | None = None,
        nonce_reject_percent: int | None = None,
        authz_reuse_percent: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        binary: str | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        """Configure a server; nothing runs until `start()`.

        `http_port` is where Pebble's HTTP-01 validator connects (the edge's HTTP port).
        `dns_server` is "HOST:PORT" of the DNS server the validator resolves names with.
        `nonce_reject_percent` sets PEBBLE_WFE_NONCEREJECT (Pebble's default of 5% when None).
        """
        if eab_required and not eab_mac_keys:
            raise ValueError("eab_required needs at least one key in eab_mac_keys")
        self.http_port = http_port
        self.host = host
        self.dns_server = dns_server
        self.eab_required = eab_required
        self.eab_mac_keys = dict(eab_mac_keys or {})
        self.certificate_validity_seconds = certificate_validity_seconds
        self.nonce_reject_percent = nonce_reject_percent
        self.authz_reuse_percent = authz_reuse_percent
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self._requested_tls_port = tls_port
        self._binary = binary or shutil.which("pebble") or DEFAULT_BINARY
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="pebble-")
            workdir = Path(self._tempdir.name)
        # Absolute: Pebble runs in its work directory, so a relative path would point nowhere.
        self.workdir = workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "pebble.log"
        self.ca_bundle_path = self.workdir / "listener-ca.pem"
        self.config_path = self.workdir / "pebble-config.json"
        self._listener_cert_path = self.workdir / "listener-cert.pem"
        self._listener_key_path = self.workdir / "listener-key.pem"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.acme_port = 0
        self.management_port = 0
        self.tls_port = 0

    # -- what clients use -------------------------------------------------------------------

    @property
    def directory_url(self) -> str:
        return f"https://{self._url_host}:{self.acme_port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://{self._url_host}:{self.management_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def root_pem(self) -> str:
        """The root certificate that certificates issued by this Pebble chain to."""
        return self._management_get("/roots/0").decode("ascii")

    def intermediate_pem(self) -> str:
        return self._management_get("/intermediates/0").decode("ascii")

    def cert_status(self, serial_hex: str) -> CertStatus:
        """Pebble's record of the certificate with this serial (hex, no `0x`).

        Raises LookupError when Pebble issued no such certificate.
        """
        try:
            body = self._management_get(f"/cert-status-by-serial/{serial_hex}")
        except httpx.HTTPStatusError as error:
            if error.response.status_code == 404:
                raise LookupError(
                    f"Pebble issued no certificate with serial {serial_hex}"
                ) from None
            raise
        record: dict[str, Any] = json.loads(body)
        return CertStatus(
            serial_hex=str(record.get("Serial", serial_hex)),
            status=str(record.get("Status", "")),
            reason=record.get("Reason"),
            revoked_at=record.get("RevokedAt") or None,
            certificate_pem=str(record.get("Certificate", "")),
        )

    def acme_settings(self, **overrides: Any) -> AcmeSettings:
        """Settings for a client of this server, polling fast since Pebble validates at once."""
        options: dict[str, Any] = {
            "directory_url": self.directory_url,
            "ca_bundle": self.ca_bundle_path,
            "poll_interval": 0.1,
            "retry_pause": 0.05,
            "validation_timeout": 30.0,
            "issuance_timeout": 30.0,
        }
        options.update(overrides)
        return AcmeSettings(**options)

    def orders_created(self) -> int:
        """How many orders this Pebble has created so far, read from its log."""
        return self.read_log().count("Added order ")

    def read_log(self) -> str:
        """Everything Pebble printed so far (its log also records each order and validation)."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        """Start Pebble and return once its directory answers; raises PebbleStartError."""
        if self.running:
            return self
        if not Path(self._binary).exists():
            raise PebbleStartError(
                f"no pebble binary at {self._binary}: install Debian's `pebble` package"
            )
        self._write_listener_certificates()
        last_error: PebbleStartError | None = None
        for _ in range(_START_ATTEMPTS):
            self._pick_ports()
            self._write_config()
            self._launch()
            try:
                self._wait_until_ready()
                return self
            except PebbleStartError as error:
                last_error = error
                self._terminate()
                if "address already in use" not in self._log_tail():
                    break
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """Stop Pebble and remove the temporary directory, if this server made one."""
        self._terminate()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"PebbleServer({self.directory_url}, http_port={self.http_port}, {state})"

    # -- internals --------------------------------------------------------------------------

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def _pick_ports(self) -> None:
        self.acme_port = free_port(self.host)
        self.management_port = free_port(self.host)
        self.tls_port = self._requested_tls_port or free_port(self.host)

    def _write_config(self) -> None:
        settings: dict[str, Any] = {
            "listenAddress": f"{self._url_host}:{self.acme_port}",
            "managementListenAddress": f"{self._url_host}:{self.management_port}",
            "certificate": str(self._listener_cert_path),
            "privateKey": str(self._listener_key_path),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": self.eab_required,
        }
        if self.eab_mac_keys:
            settings["externalAccountMACKeys"] = self.eab_mac_keys
        if self.certificate_validity_seconds is not None:
            settings["certificateValidityPeriod"] = self.certificate_validity_seconds
        self.config_path.write_text(json.dumps({"pebble": settings}, indent=2), encoding="utf-8")

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PEBBLE_VA_NOSLEEP"] = "1"
        if self.nonce_reject_percent is not None:
            env["PEBBLE_WFE_NONCEREJECT"] = str(self.nonce_reject_percent)
        if self.authz_reuse_percent is not None:
            env["PEBBLE_AUTHZREUSE"] = str(self.authz_reuse_percent)
        env.update(self.extra_env)
        return env

    def _launch(self) -> None:
        command = [self._binary, "-config", str(self.config_path)]
        if self.dns_server:
            command += ["-dnsserver", self.dns_server]
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=self._environment(),
            cwd=self.workdir,
        )

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        context = self._listener_context()
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise PebbleStartError(
                    f"pebble exited with status {self._process.returncode}; "
                    f"log {self.log_path}:\n{self._log_tail()}"
                )
            try:
                if httpx.get(self.directory_url, verify=context, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise PebbleStartError(
                    f"pebble did not answer at {self.directory_url} within "
                    f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _terminate(self) -> None:
        process, self._process = self._process, None
        stop_process(process)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.read_log().splitlines()[-lines:])

    def _listener_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle_path))

    def _management_get(self, path: str) -> bytes:
        if not self.running:
            raise RuntimeError("pebble is not running: call start() first")
        response = httpx.get(
            f"{self.management_url}{path}", verify=self._listener_context(), timeout=10
        )
        response.raise_for_status()
        return response.content

    def _write_listener_certificates(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = ca_certificate(
            "linkcert test listener CA", ca_key, path_length=0, lifetime=_LISTENER_LIFETIME
        )
        listener_key = ec.generate_private_key(ec.SECP256R1())
        listener_cert = leaf_certificate(
            listener_key,
            _LISTENER_NAMES,
            ca_cert,
            ca_key,
            addresses=_LISTENER_ADDRESSES,
            subject="localhost",
            lifetime=_LISTENER_LIFETIME,
        )
        self.ca_bundle_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        self._listener_cert_path.write_bytes(listener_cert.public_bytes(serialization.Encoding.PEM))
        self._listener_key_path.write_bytes(private_key_pem(listener_key))
        self._listener_key_path.chmod(0o600)
