"""Refresh the pictures in this folder: run the browser tests, keeping a screenshot of each page.

    .venv/bin/python docs/screenshots/make.py

Needs what the tests need: Debian's chromium, pebble and knot (`make setup` installs them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> int:
    environment = {**os.environ, "LINKCERT_SCREENSHOTS": str(HERE)}
    tests = ["tests/test_browser_pages.py", "tests/test_dcv_browser.py"]
    command = [sys.executable, "-m", "pytest", "-q", *tests]
    return subprocess.run(command, cwd=ROOT, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
