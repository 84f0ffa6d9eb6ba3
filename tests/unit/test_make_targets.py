"""`make run` installs what the service needs and nothing more; `make test` adds the dev tools.

Read from `make -n -B` (what make would run, from scratch, into a venv that does not exist), so
the test follows the Makefile's real dependency chain rather than a copy of it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _planned(target: str, venv: Path) -> list[str]:
    """The commands `make <target>` would run to build a venv at `venv` from nothing."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target, f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.splitlines()


def _installs(commands: list[str]) -> list[str]:
    return [c for c in commands if " install " in c and "pip" in c and "--upgrade pip" not in c]


def test_make_run_installs_the_package_without_extras(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    commands = _planned("run", venv)
    installs = _installs(commands)
    assert installs, commands
    for command in installs:
        # `-e .` and nothing else: an extra ('.[dev]') would bring pytest into production.
        assert "[" not in command, command
        assert command.split()[-1] == ".", command
    assert commands[-1] == f"{venv}/bin/booking-guard serve"


def test_make_test_installs_the_dev_tools(tmp_path: Path) -> None:
    installs = _installs(_planned("test", tmp_path / "venv"))
    assert any("'.[dev]'" in command for command in installs), installs
