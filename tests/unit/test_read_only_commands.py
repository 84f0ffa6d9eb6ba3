"""Commands that only read refuse a data directory without a database instead of making one."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli.main import main


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = tmp_path / "postgres"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("BOOKING_GUARD_DATA_DIR", str(data_dir))
    return data_dir


@pytest.mark.parametrize(
    "command",
    [
        ["audit", "call", "call_687"],
        ["audit", "booking", "8Fxv4pCqnb1Jva1w9wn5wX"],
        ["projections", "status"],
        ["projections"],
        ["replay"],
        ["db", "status"],
        ["attempts", "resume", "0b6c7a52-8f6a-4c1e-9a55-3a8f0f0f6b1e"],
    ],
)
def test_a_read_only_command_says_there_is_no_database_and_creates_none(
    empty_data_dir: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main(command) == 1
    err = capsys.readouterr().err
    assert f"no database in {empty_data_dir.resolve()}" in err, err
    assert "booking-guard serve" in err and "DATABASE_URL" in err, err
    assert not empty_data_dir.exists()


def test_an_empty_existing_directory_is_no_database_either(
    empty_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty_data_dir.mkdir()
    assert main(["projections", "status"]) == 1
    assert "no database in" in capsys.readouterr().err
    assert list(empty_data_dir.iterdir()) == []
