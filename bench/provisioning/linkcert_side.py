"""linkcert as a contender: one child process (worker and edge), driven over its stdin.

linkcert runs in a process of its own, as `linkcert serve` would, so that the benchmark's
client does not share its interpreter. Latency is timed from the moment the save command is
written (the save and the worker's wake-up count) to a verified HTTPS response from the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from pathlib import Path
from typing import IO, Any

from bench.provisioning import children
from bench.provisioning.probe import client_context, https_get
from bench.provisioning.world import DCV_ZONE, EDGE_TARGET, World
from linkcert.keys import generate_master_key
from linkcert.testbed.waiting import free_port
from linkcert.tracking import make_token, tracking_key_from_secret

REPO_ROOT = Path(__file__).resolve().parents[2]
DESTINATION = "https://shop.bench.test/spring-sale?utm_source=email"
START_TIMEOUT = 60.0
# After the edge reports a name served, the HTTPS check is retried this often, this many times.
VERIFY_PAUSE = 0.02
VERIFY_TRIES = 50
QUIT_GRACE = 5.0


class LinkcertFailed(RuntimeError):
    """The linkcert process did not start, stopped, or did not secure a name in time."""


class LinkcertSide:
    name = "linkcert"

    def __init__(
        self,
        world: World,
        workdir: Path,
        *,
        database_url: str | None = None,
        worker_concurrency: int | None = None,
        log_level: str = "WARNING",
        first_ca_down: bool = False,
        dns01: bool = False,
    ) -> None:
        self.world = world
        # Secured before the switch: names delegate `_acme-challenge` to the platform's zone
        # (in Knot) and still point elsewhere; certificates come by DNS-01.
        self.dns01 = dns01
        if dns01:
            self.name = "dns01"
        # Two CAs, the preferred one down (nothing listens at its address): every order
        # falls over to the second, the world's Pebble.
        self.first_ca_down = first_ca_down
        if first_ca_down:
            self.name = "failover"
        self.workdir = workdir
        self.database_url = database_url
        self.worker_concurrency = worker_concurrency
        self.log_level = log_level
        self.context = client_context(world.root_pem)
        self._secret = secrets.token_urlsafe(36)
        self._key = tracking_key_from_secret(self._secret)
        self._process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._served: dict[str, asyncio.Future[float]] = {}

    @property
    def log_path(self) -> Path:
        return self.workdir / "linkcert.log"

    def _settings(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "data_dir": str(self.workdir),
            "database_url": self.database_url or f"sqlite:///{self.workdir / 'linkcert.sqlite3'}",
            "acme_directory_url": self.world.directory_url,
            "acme_ca_bundle": str(self.world.ca_bundle),
            "nameservers": [self.world.nameserver],
            "cname_targets": [EDGE_TARGET],
            "allow_test_domains": True,
            "http_listen": f"127.0.0.1:{self.world.http_port}",
            "https_listen": f"127.0.0.1:{self.world.https_port}",
            "master_key": generate_master_key("bench"),
            "tracking_key": self._secret,
        }
        if self.worker_concurrency is not None:
            values["worker_concurrency"] = self.worker_concurrency
        if self.dns01:
            knot = self.world.knot
            assert knot is not None, "the DNS-01 side needs a world with Knot"
            values.update(
                dcv_zone=DCV_ZONE,
                dcv_update_server=knot.address,
                dcv_tsig_key_name=knot.update_key_name,
                dcv_tsig_secret=knot.update_secret,
                dcv_check_servers=[knot.address],
            )
        if self.first_ca_down:
            del values["acme_directory_url"], values["acme_ca_bundle"]
            values["acme_cas"] = [
                {
                    "name": "Stopped CA",
                    "directory_url": f"https://127.0.0.1:{free_port()}/dir",
                    "caa_domains": ["stopped-ca.bench.test"],
                },
                {
                    "name": "Pebble",
                    "directory_url": self.world.directory_url,
                    "caa_domains": ["letsencrypt.org"],
                    "ca_bundle": str(self.world.ca_bundle),
                },
            ]
        return values

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        command = [sys.executable, "-m", "bench.provisioning.linkcert_child"]
        self._process = await children.spawn(command, cwd=REPO_ROOT, log=self._log, pipes=True)
        self._reader = asyncio.create_task(self._read_events())
        self._send({"settings": self._settings(), "log_level": self.log_level})
        await self._reply("ready", START_TIMEOUT)

    def _send(self, message: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")

    async def _read_events(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while line := await self._process.stdout.readline():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not ours: the events are JSON objects, one a line
            if event["event"] == "served":
                # Stamped on arrival: the pipe adds well under a millisecond.
                self._future(event["name"]).set_result(time.monotonic())
            else:
                self._replies.put_nowait(event)
        self._replies.put_nowait({"event": "exited"})

    def _future(self, name: str) -> asyncio.Future[float]:
        if name not in self._served:
            self._served[name] = asyncio.get_running_loop().create_future()
        return self._served[name]

    async def _reply(self, kind: str, timeout: float) -> dict[str, Any]:
        try:
            reply = await asyncio.wait_for(self._replies.get(), timeout)
        except TimeoutError:
            raise LinkcertFailed(f"no {kind!r} from linkcert in {timeout:g} s") from None
        if reply["event"] != kind:
            raise LinkcertFailed(
                f"linkcert sent {reply['event']!r} instead of {kind!r}; "
                f"see {self.log_path}:\n{self.log_tail()}"
            )
        return reply

    async def prepare(self, names: list[str], timeout: float = 300.0) -> None:
        """Create the customers' accounts and their CNAMEs (not part of any timing); for
        DNS-01, their delegations instead, the names still pointing elsewhere."""
        self._send({"op": "accounts", "names": names})
        reply = await self._reply("accounts", timeout)
        if self.dns01:
            self.world.delegate({name: reply["labels"][name] for name in names})
        else:
            self.world.point(names, reply["targets"])

    def save(self, names: list[str]) -> None:
        """Save the names as tracking domains; `saved` follows once all are written."""
        for name in names:
            self._future(name)
        self._send({"op": "save", "names": names})

    async def saved(self, timeout: float = 300.0) -> None:
        await self._reply("saved", timeout)

    def served_at(self, name: str) -> asyncio.Future[float]:
        """Resolves with the monotonic time the edge started serving `name`."""
        return self._future(name)

    async def verify(self, name: str, timeout: float = 10.0) -> None:
        """A tracked link on `name` answers its 302 over verified HTTPS; retried briefly."""
        token = make_token(self._key, name, 1, DESTINATION)
        problem: Exception | None = None
        for _ in range(VERIFY_TRIES):
            try:
                answer = await https_get(
                    self.world.https_port, name, f"/c/{token}", self.context, timeout
                )
            except (OSError, TimeoutError, ValueError) as exc:
                problem = exc
                await asyncio.sleep(VERIFY_PAUSE)
                continue
            if answer.status == 302 and answer.headers.get("location") == DESTINATION:
                return
            raise LinkcertFailed(f"the edge answered {answer.status} for a tracked link")
        raise LinkcertFailed(f"no verified HTTPS answer for {name}: {problem}")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def obtain(self, name: str, timeout: float) -> float:
        """Seconds from saving `name` (prepared before) to a verified HTTPS answer on it."""
        started = time.monotonic()
        self.save([name])
        try:
            await asyncio.wait_for(asyncio.shield(self.served_at(name)), timeout)
        except TimeoutError:
            raise LinkcertFailed(f"{name} not served within {timeout:g} s") from None
        await self.verify(name)
        elapsed = time.monotonic() - started
        await self.saved()
        return elapsed

    async def stop(self) -> None:
        if self._process is not None:
            if self._process.returncode is None and self._process.stdin is not None:
                with contextlib.suppress(OSError):
                    self._send({"op": "quit"})
                # A clean stop if it comes soon; a process busy with a wave (or a Ctrl-C) gets
                # SIGTERM instead: nothing in it outlives the run.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._process.wait(), QUIT_GRACE)
            await children.stop(self._process)
            self._process = None
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])
