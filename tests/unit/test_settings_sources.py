"""Where settings come from: the environment, then `.env`, then BOOKING_GUARD_SECRETS_DIR."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.cli.main import main
from service.settings import (
    ENV_FILE_VARIABLE,
    ENV_NAMES,
    SECRETS_DIR_VARIABLE,
    Settings,
    describe_invalid,
)
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def in_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A working directory of the test's own, and none of the settings below from outside."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "CALCOM_API_KEY",
        "RETELL_API_KEY",
        "BOOKING_GUARD_API_TOKENS",
        "BOOKING_GUARD_FRESHNESS_MAX_AGE_SECONDS",
        "BOOKING_GUARD_PORT",
        SECRETS_DIR_VARIABLE,
    ):
        monkeypatch.delenv(name, raising=False)


def reading_env_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a deployment runs: no BOOKING_GUARD_ENV_FILE, so `.env` is read (tests/conftest.py
    turns it off for the suite)."""
    monkeypatch.delenv(ENV_FILE_VARIABLE)


def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **files: str) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    for name, text in files.items():
        (directory / name).write_text(text)
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, str(directory))
    return directory


def test_the_test_suite_reads_no_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOOKING_GUARD_FRESHNESS_MAX_AGE_SECONDS=99\n")
    assert Settings().freshness_max_age_seconds == 30


def test_a_dot_env_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reading_env_files(monkeypatch)
    (tmp_path / ".env").write_text(
        "# a comment\nBOOKING_GUARD_FRESHNESS_MAX_AGE_SECONDS=99\nCALCOM_API_KEY=cal_live_x\n"
    )
    settings = Settings()
    assert settings.freshness_max_age_seconds == 99
    assert settings.calcom_api_key is not None
    assert settings.calcom_api_key.get_secret_value() == "cal_live_x"


def test_the_environment_wins_over_dot_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reading_env_files(monkeypatch)
    (tmp_path / ".env").write_text("BOOKING_GUARD_PORT=9000\n")
    monkeypatch.setenv("BOOKING_GUARD_PORT", "9100")
    assert Settings().port == 9100


def test_no_dot_env_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    reading_env_files(monkeypatch)
    assert Settings().port == 8080


def test_a_secret_file_loses_its_trailing_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets(tmp_path, monkeypatch, CALCOM_API_KEY="cal_live_secret\n", RETELL_API_KEY="key_r\r\n")
    settings = Settings()
    assert settings.calcom_api_key is not None
    assert settings.calcom_api_key.get_secret_value() == "cal_live_secret"
    assert settings.retell_api_key is not None
    assert settings.retell_api_key.get_secret_value() == "key_r"


def test_tokens_come_from_a_secret_file_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = "a-long-enough-token-1,a-long-enough-token-2"
    secrets(tmp_path, monkeypatch, BOOKING_GUARD_API_TOKENS=tokens + "\n")
    assert Settings().api_tokens == tokens.split(",")


@pytest.mark.parametrize("text", ["", "\n", "  \n", "\t\r\n"])
@pytest.mark.parametrize("name", ["CALCOM_API_KEY", "RETELL_API_KEY", "BOOKING_GUARD_API_TOKENS"])
def test_a_blank_secret_file_stops_the_process_naming_the_setting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    text: str,
) -> None:
    secrets(tmp_path, monkeypatch, **{name: text})
    # Should the check let it through, the command fails on this address instead of starting
    # an embedded server.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["projections", "status"]) == 2
    err = capsys.readouterr().err
    assert "booking-guard: invalid settings" in err
    assert name in err


def test_the_environment_wins_over_a_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets(tmp_path, monkeypatch, CALCOM_API_KEY="from_the_file")
    monkeypatch.setenv("CALCOM_API_KEY", "from_the_environment")
    settings = Settings()
    assert settings.calcom_api_key is not None
    assert settings.calcom_api_key.get_secret_value() == "from_the_environment"


@pytest.mark.parametrize("value", ["/no/such/directory", " "])
def test_a_secrets_dir_that_is_no_directory_is_named(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(SECRETS_DIR_VARIABLE, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert SECRETS_DIR_VARIABLE in describe_invalid(caught.value)


def test_env_example_lists_every_setting_commented_out() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    assert all(not line.strip() or line.startswith("#") for line in lines), "an active line"
    listed = {m.group(1) for line in lines if (m := re.match(r"#\s*([A-Z_]+)=", line))}
    assert listed >= {*ENV_NAMES.values(), ENV_FILE_VARIABLE}
