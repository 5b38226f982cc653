"""The README's first command: `linkcert demo` secures a domain and its link answers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.pebble
def test_demo_once_secures_the_demo_domain_and_prints_working_commands(tmp_path: Path) -> None:
    # The default data directory, relative to wherever the command is typed.
    run = subprocess.run(
        [sys.executable, "-m", "linkcert", "demo", "--once"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "links.demo-shop.test is secured." in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    https_curl = re.search(r"curl -i --cacert .*https://\S+'", run.stdout)
    assert https_curl is not None
    # The printed files exist and the token printed for the API has the token form.
    data_dir = tmp_path / "var" / "demo"
    assert (data_dir / "demo-ca-root.pem").exists()
    assert f"--cacert {data_dir / 'demo-ca-root.pem'} " in run.stdout
    assert re.search(r"Bearer lct_[A-Za-z0-9_-]{43}", run.stdout)
