import subprocess
import sys


def test_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "linkcert", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0
    assert "check" in out.stdout


def test_edge_processes_out_of_range_is_refused_before_starting() -> None:
    for flag in ("0", "65"):
        out = subprocess.run(
            [sys.executable, "-m", "linkcert", "edge", "--processes", flag],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 2
        assert "--processes" in out.stderr
