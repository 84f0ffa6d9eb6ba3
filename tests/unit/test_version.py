"""`booking-guard --version` says which release is installed, from the package's metadata."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from service.cli.main import main
from service.ops.version import package_version


def test_version_prints_the_installed_release(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"booking-guard {version('booking-guard')}"


def test_the_release_is_the_one_pyproject_declares() -> None:
    import tomllib

    from tests.conftest import ROOT

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert package_version() == declared
