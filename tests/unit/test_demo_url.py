"""`booking-guard demo` finds the service where `serve` listens: BOOKING_GUARD_HOST and _PORT."""

from __future__ import annotations

import socket

import pytest

from service.cli.demo import service_url
from service.cli.main import main


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8081"),
        ("0.0.0.0", "http://127.0.0.1:8081"),
        ("::", "http://[::1]:8081"),
        ("::1", "http://[::1]:8081"),
        ("booking.internal", "http://booking.internal:8081"),
    ],
)
def test_the_default_url_is_where_serve_listens(host: str, url: str) -> None:
    assert service_url(host, 8081) == url


def test_demo_without_url_dials_booking_guard_host_and_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    monkeypatch.setenv("BOOKING_GUARD_HOST", "127.0.0.1")
    monkeypatch.setenv("BOOKING_GUARD_PORT", str(port))
    assert main(["demo"]) == 1
    assert f"cannot reach http://127.0.0.1:{port}" in capsys.readouterr().err


def test_an_explicit_url_wins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = closed_port()
    monkeypatch.setenv("BOOKING_GUARD_PORT", "1")
    assert main(["demo", "--url", f"http://127.0.0.1:{port}"]) == 1
    assert f"cannot reach http://127.0.0.1:{port}" in capsys.readouterr().err
