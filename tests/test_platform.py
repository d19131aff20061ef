"""`make run` on a machine it does not support stops at once with one line saying what it needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs GNU make")


def _make_run(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path} if path is not None else None
    # -n: nothing would run even if the check let it through
    # --no-print-directory: under `make test` the child make would announce its directory on stdout
    return subprocess.run(
        [MAKE, "--no-print-directory", "-n", "run", *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


def test_another_python_stops_with_one_line() -> None:
    proc = _make_run(f"PYTHON={REPO / 'no-such-python3.11'}")
    assert proc.returncode != 0 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "make run needs Python 3.11" in proc.stderr


def test_no_apt_stops_with_one_line(tmp_path: Path) -> None:
    if (REPO / "resources/downloads/tuxpaint_stamps").exists():
        pytest.skip("the stamps .deb is already downloaded, so apt-get is not needed")
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the Python check comes first")
    (tmp_path / "python3.11").symlink_to(sys.executable)  # a PATH with Python 3.11 and no apt-get
    proc = _make_run(path=str(tmp_path))
    assert proc.returncode != 0 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "needs Debian's apt-get" in proc.stderr
