import subprocess
import sys


def test_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "linkcert", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0
    assert "check" in out.stdout
