"""Secrets never fail open: set-but-empty secrets and anonymous public listeners stop the start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.cli.main import main
from service.settings import Settings, anonymous_exposure, describe_invalid

SECRETS = ("BOOKING_GUARD_API_TOKENS", "RETELL_API_KEY", "CALCOM_WEBHOOK_SECRET", "CALCOM_API_KEY")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SECRETS, "BOOKING_GUARD_ALLOW_ANONYMOUS", "BOOKING_GUARD_HOST"):
        monkeypatch.delenv(name, raising=False)
    # Should a check let invalid settings through, the command fails on this address at once
    # instead of starting an embedded server or touching a real database.
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")


def start_db_command(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run a command that reads the settings first and stops there when they are invalid."""
    code = main(["projections", "status"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("value", ["", ",", " , ", "   ", "a-long-enough-token-1,"])
def test_set_but_empty_tokens_stop_the_process_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    monkeypatch.setenv("BOOKING_GUARD_API_TOKENS", value)
    code, err = start_db_command(capsys)
    assert code == 2
    assert "booking-guard: invalid settings" in err
    assert "BOOKING_GUARD_API_TOKENS" in err


def test_a_short_token_stops_the_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKING_GUARD_API_TOKENS", "a-long-enough-token-1,short")
    code, err = start_db_command(capsys)
    assert code == 2
    assert "BOOKING_GUARD_API_TOKENS" in err
    assert "16" in err
    assert "short" not in err.replace("shorter", "")  # the message never echoes a secret


@pytest.mark.parametrize("name", ["RETELL_API_KEY", "CALCOM_WEBHOOK_SECRET", "CALCOM_API_KEY"])
@pytest.mark.parametrize("value", ["", "  ", "\t"])
def test_a_set_but_empty_secret_stops_the_process_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    code, err = start_db_command(capsys)
    assert code == 2
    assert name in err


def test_unset_secrets_disable_their_feature() -> None:
    settings = Settings()
    assert settings.api_tokens == []
    assert settings.retell_api_key is None
    assert settings.calcom_webhook_secret is None


def test_long_tokens_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKING_GUARD_API_TOKENS", " token-a-0123456789 ,token-b-0123456789")
    assert Settings().api_tokens == ["token-a-0123456789", "token-b-0123456789"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_without_tokens_loopback_may_serve(host: str) -> None:
    assert anonymous_exposure(Settings(), host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "booking.internal"])
def test_without_tokens_any_other_address_refuses_to_start(host: str) -> None:
    refusal = anonymous_exposure(Settings(), host)
    assert refusal is not None
    assert "BOOKING_GUARD_ALLOW_ANONYMOUS" in refusal
    assert "BOOKING_GUARD_API_TOKENS" in refusal


def test_allow_anonymous_or_a_token_lets_any_address_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOOKING_GUARD_ALLOW_ANONYMOUS", "true")
    assert anonymous_exposure(Settings(), "0.0.0.0") is None
    monkeypatch.delenv("BOOKING_GUARD_ALLOW_ANONYMOUS")
    monkeypatch.setenv("BOOKING_GUARD_API_TOKENS", "token-a-0123456789")
    assert anonymous_exposure(Settings(), "0.0.0.0") is None


def test_serve_checks_the_effective_host_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # BOOKING_GUARD_HOST says loopback, --host says everywhere: --host is where we would listen.
    monkeypatch.setenv("BOOKING_GUARD_HOST", "127.0.0.1")
    code = main(["serve", "--host", "0.0.0.0", "--port", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert "BOOKING_GUARD_ALLOW_ANONYMOUS" in err


def test_a_calcom_base_url_without_a_key_stops_the_start_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without a key the service would book against its built-in simulator, ignoring the URL.
    monkeypatch.delenv("CALCOM_API_KEY", raising=False)
    monkeypatch.setenv("CALCOM_BASE_URL", "https://cal.example.com")
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = describe_invalid(refused.value)
    assert "CALCOM_API_KEY" in message and "CALCOM_BASE_URL" in message
    monkeypatch.setenv("CALCOM_API_KEY", "cal_dummy")
    assert Settings().calcom_base_url == "https://cal.example.com"


def test_serve_refuses_to_start_with_a_calcom_base_url_and_no_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CALCOM_API_KEY", raising=False)
    monkeypatch.setenv("CALCOM_BASE_URL", "http://127.0.0.1:8090")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err and "CALCOM_API_KEY" in err
