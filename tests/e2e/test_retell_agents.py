"""The event type comes from the Retell agent's configuration, not from the LLM."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from service.cli.main import main
from service.settings import RetellService, Settings
from tests.e2e.conftest import CALL_687, PLAIN, RETURNS_EXISTING, Harness, MakeHarness
from tests.e2e.signed import RETELL_KEY, post_retell

AGENTS = {"agent_1": {"Beratung": PLAIN, "Erstgespräch": RETURNS_EXISTING}}


@pytest.fixture
async def configured(make_harness: MakeHarness) -> Harness:
    return await make_harness(
        retell_api_key=RETELL_KEY, settings_overrides={"retell_agents": AGENTS}
    )


def call(function: str = "book_appointment", agent_id: str = "agent_1", **args: Any) -> Any:
    arguments = {
        "start": "2025-10-10T12:00:00",
        "time_zone": "Europe/Berlin",
        "name": "Hansi Sputer",
        "email": "hansi@example.com",
        **args,
    }
    return {
        "name": function,
        "call": {"call_id": CALL_687, "agent_id": agent_id},
        "args": {k: v for k, v in arguments.items() if v is not None},
    }


async def test_the_service_name_picks_the_agents_event_type(configured: Harness) -> None:
    answer = await (await post_retell(configured, call(service=" beratung "))).json()
    assert answer["result"] == "confirmed", answer
    requested = await configured.pool.fetchval(
        "SELECT data FROM events WHERE type = 'BookingRequested'"
    )
    assert requested["event_type_id"] == PLAIN


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (call(service="Massage"), "service"),
        (call(event_type_id=PLAIN), "service"),  # the LLM's number is not enough
        (call(agent_id="agent_unknown", service="Beratung"), "agent_id"),  # fail closed
        (call("check_availability", service="Massage", day="2025-10-10"), "service"),
    ],
)
async def test_anything_else_is_invalid_and_writes_nothing(
    configured: Harness, body: Any, field: str
) -> None:
    answer = await (await post_retell(configured, body)).json()
    assert answer["result"] == "invalid", answer
    assert answer["invalid_args"] == [field]
    assert await configured.event_count() == 0
    assert not [r for r in configured.simulator.requests if r.method == "POST"]


async def test_check_availability_takes_the_service_too(configured: Harness) -> None:
    body = call("check_availability", service="Beratung", day="2025-10-10")
    answer = await (await post_retell(configured, body)).json()
    assert answer["result"] == "available", answer
    (query,) = [r for r in configured.simulator.requests if r.path == "/v2/slots"]
    assert query.query["eventTypeId"] == str(PLAIN)


async def test_without_configuration_event_type_id_is_taken_with_a_warning(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.app"):
        harness = await make_harness(retell_api_key=RETELL_KEY)
    assert "BOOKING_GUARD_RETELL_AGENTS is not set" in caplog.text
    answer = await (await post_retell(harness, call(event_type_id=PLAIN))).json()
    assert answer["result"] == "confirmed", answer


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("BOOKING_GUARD_RETELL_AGENTS", "{not json", "BOOKING_GUARD_RETELL_AGENTS"),
        (
            "BOOKING_GUARD_RETELL_AGENTS",
            '{"agent_1": {"Beratung": -1}}',
            "BOOKING_GUARD_RETELL_AGENTS",
        ),
        ("BOOKING_GUARD_RETELL_AGENTS_FILE", "{not json", "BOOKING_GUARD_RETELL_AGENTS_FILE"),
    ],
)
def test_a_bad_configuration_stops_the_process_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    variable: str,
    value: str,
    named: str,
) -> None:
    if variable.endswith("_FILE"):
        path = tmp_path / "agents.json"
        path.write_text(value)
        value = str(path)
    monkeypatch.setenv(variable, value)
    assert main(["serve"]) == 2
    assert named in capsys.readouterr().err


def test_the_file_is_read_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "agents.json"
    path.write_text('{"agent_1": {"Beratung": 1002}}')
    monkeypatch.setenv("BOOKING_GUARD_RETELL_AGENTS_FILE", str(path))
    assert Settings().retell_agents == {"agent_1": {"Beratung": RetellService(event_type_id=1002)}}
