"""The README's two commands, typed the way a newcomer types them into a fresh clone.

`make demo` runs in a clone of this repository made for the test, with the default data
directory: its own `make setup` creates the clone's `.venv` (pip's cache keeps that short), then
the demo prints the secured line and a `curl` command, which is run as printed. Ctrl-C (SIGINT to
the foreground process group, as a terminal sends it) stops it without a traceback. `make test`
is not run in the clone (it would run this test again); CI's script is checked to be just it.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SECURED = "links.demo-shop.test is secured."
# Setup (the venv, pip) and the demo's first certificate; generous for a cold machine.
DEMO_DEADLINE_SECONDS = 900.0


def _lines(stream: object, into: queue.Queue[str | None]) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        into.put(line)
    into.put(None)


def _read_until(
    lines: queue.Queue[str | None], seen: list[str], wanted: str, deadline: float
) -> None:
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"no {wanted!r} in time; output so far:\n{''.join(seen)}")
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            pytest.fail(f"make demo ended before {wanted!r}:\n{''.join(seen)}")
        seen.append(line)
        if wanted in line:
            return


@pytest.mark.pebble
def test_make_demo_in_a_fresh_clone_secures_the_domain_and_its_printed_curl_works(
    tmp_path: Path,
) -> None:
    if shutil.which("pebble") is None and not Path("/usr/bin/pebble").exists():
        if os.environ.get("CI"):
            pytest.fail("Debian's pebble is required on CI")
        pytest.skip("Debian's pebble is not installed")
    clone = tmp_path / "linkcert"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=120)
    assert not (clone / ".venv").exists()

    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKCERT_")}
    env.pop("VIRTUAL_ENV", None)
    demo = subprocess.Popen(
        ["make", "demo"],
        cwd=clone,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(demo.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + DEMO_DEADLINE_SECONDS
        _read_until(lines, seen, SECURED, deadline)
        _read_until(lines, seen, "Press Ctrl-C to stop.", deadline)
        output = "".join(seen)
        curl = next(
            line.strip()
            for line in output.splitlines()
            if line.strip().startswith("curl -i --cacert")
        )
        # The default data directory, inside the clone, printed as an absolute path.
        assert f"--cacert {clone / 'var' / 'demo' / 'demo-ca-root.pem'} " in curl
        answer = subprocess.run(
            ["sh", "-c", curl], capture_output=True, text=True, timeout=60, check=False
        )
        assert answer.returncode == 0, answer.stderr
        assert re.match(r"HTTP/\S+ 30[12378]", answer.stdout), answer.stdout
        assert "location: https://demo-shop.test/spring-sale" in answer.stdout.lower()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            pytest.fail(f"make demo did not stop on Ctrl-C:\n{''.join(seen)}")
        reader.join(timeout=10)
    while not lines.empty():
        line = lines.get_nowait()
        if line is not None:
            seen.append(line)
    output = "".join(seen)
    assert "Traceback" not in output, output
    assert "demo stopped" in output, output
    # Make reports the interrupt and dies of SIGINT itself, as it does in a terminal.
    assert demo.returncode in (0, -signal.SIGINT, 130, 2), output


def _commands(script: str) -> list[str]:
    """A shell script's command lines, without comments, `set` options and the `cd` to the root."""
    kept = []
    for raw in script.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("set "):
            continue
        if line.startswith("cd "):
            continue
        kept.append(line)
    return kept


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert _commands((REPO / ".ci" / "run").read_text()) == ["make test"]
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^make test\b", readme, re.MULTILINE)
    assert re.search(r"^make demo\b", readme, re.MULTILINE)
