"""`booking-guard check` against the Cal.com simulator and a real PostgreSQL."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr

from events.calls import RetellCallStarted, call_stream
from events.models import NewEvent
from events.store import EventStore, ExpectedVersion
from service.calcom.simulator.event_types import (
    CONFIRMATION_EVENT_TYPE_ID,
    INCIDENT_EVENT_TYPE_ID,
    PLAIN_EVENT_TYPE_ID,
    RECURRING_EVENT_TYPE_ID,
    SEATED_EVENT_TYPE_ID,
    SIMULATED_ACCOUNT,
)
from service.calcom.simulator.server import CalcomSimulator
from service.cli.check import Row, exit_status, print_rows, run_checks
from service.settings import Settings
from tests.e2e.served import simulator_on_loopback
from tests.integration.conftest import NewDatabase
from tests.integration.test_migrate_cli import booking_guard

KEY = "cal_live_0123456789"
AGENTS = {"agent_a": {"Beratung": INCIDENT_EVENT_TYPE_ID, "Anfrage": CONFIRMATION_EVENT_TYPE_ID}}


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[CalcomSimulator, str]]:
    async with simulator_on_loopback() as served:
        yield served


def live(database_url: str, origin: str, **more: Any) -> Settings:
    """Settings as a deployment ready to go live would have them."""
    fields: dict[str, Any] = {
        "database_url": database_url,
        "calcom_api_key": SecretStr(KEY),
        "calcom_base_url": origin,
        "retell_api_key": SecretStr("key_retell_0123456789"),
        "calcom_webhook_secret": SecretStr("whsec_0123456789"),
        "api_tokens": ["token-0123456789abcdef"],
        "retell_agents": AGENTS,
    }
    return Settings(**(fields | more))


def by_check(rows: list[Row]) -> dict[str, Row]:
    return {row.check: row for row in rows}


def table(rows: list[Row]) -> str:
    out = io.StringIO()
    print_rows(rows, out)
    return out.getvalue()


async def test_a_ready_deployment_passes_every_check(
    db: asyncpg.Pool, database_url: str, simulator: tuple[CalcomSimulator, str]
) -> None:
    _, origin = simulator
    rows = await run_checks(live(database_url, origin), event_types=[PLAIN_EVENT_TYPE_ID])
    assert exit_status(rows) == 0, rows
    found = by_check(rows)
    assert [row.status for row in rows] == ["ok"] * len(rows)
    assert SIMULATED_ACCOUNT.email in found["Cal.com"].found
    assert found["event type 1001"].found.startswith("round-robin")
    assert "agent_a: Beratung" in found["event type 1001"].found
    assert found["event type 1003"].found.startswith("requires confirmation")
    assert found["event type 1002"].found.startswith("plain")
    assert "--event-type" in found["event type 1002"].found
    text = table(rows)
    for name in ("PostgreSQL", "schema", "Cal.com", "listing bookings", "Retell agents"):
        assert name in text
    assert "0 failed, 0 warnings: ready" in text


async def test_a_revoked_key_fails_and_says_to_set_a_new_one(
    db: asyncpg.Pool, database_url: str, simulator: tuple[CalcomSimulator, str]
) -> None:
    sim, origin = simulator
    sim.revoked_keys.add(KEY)
    rows = await run_checks(live(database_url, origin))
    assert exit_status(rows) == 1
    calcom = by_check(rows)["Cal.com"]
    assert calcom.status == "FAIL"
    assert "Invalid API Key" in calcom.found
    assert "CALCOM_API_KEY" in calcom.todo and "team admin" in calcom.todo
    # Every Cal.com check after it would fail the same way: they are skipped, not repeated.
    assert by_check(rows)["listing bookings"].status == "skip"
    assert "not ready to go live" in table(rows)


async def test_kinds_booking_guard_refuses_and_unknown_event_types_fail(
    db: asyncpg.Pool, database_url: str, simulator: tuple[CalcomSimulator, str]
) -> None:
    _, origin = simulator
    rows = await run_checks(
        live(database_url, origin),
        event_types=[SEATED_EVENT_TYPE_ID, RECURRING_EVENT_TYPE_ID, 4040],
    )
    found = by_check(rows)
    assert found["event type 1011"].status == "FAIL" and "seated" in found["event type 1011"].found
    assert found["event type 1012"].status == "FAIL"
    assert "recurring" in found["event type 1012"].found
    assert found["event type 4040"].status == "FAIL"
    assert "Event Types" in found["event type 4040"].todo
    assert exit_status(rows) == 1


async def test_a_database_behind_fails_the_schema_row_naming_db_migrate(
    new_database: NewDatabase, simulator: tuple[CalcomSimulator, str]
) -> None:
    _, origin = simulator
    rows = await run_checks(live(await new_database(), origin))
    schema = by_check(rows)["schema"]
    assert schema.status == "FAIL"
    assert "version 0 of" in schema.found
    assert "booking-guard db migrate" in schema.todo
    assert by_check(rows)["PostgreSQL"].status == "ok"
    assert exit_status(rows) == 1


async def test_an_agent_the_ledger_saw_without_configuration_fails(
    db: asyncpg.Pool, database_url: str, simulator: tuple[CalcomSimulator, str]
) -> None:
    _, origin = simulator
    store = EventStore(db)
    for call, agent in (("call_1", "agent_a"), ("call_2", "agent_retired")):
        started = RetellCallStarted(call_id=call, agent_id=agent)
        await store.append(
            call_stream(call), [NewEvent(started)], expected_version=ExpectedVersion.NO_STREAM
        )
    await store.close()
    agents = by_check(await run_checks(live(database_url, origin)))["Retell agents"]
    assert agents.status == "FAIL"
    assert "agent_retired" in agents.found and "agent_a" not in agents.found
    assert "BOOKING_GUARD_RETELL_AGENTS" in agents.todo


async def test_without_a_key_it_says_the_simulator_is_not_calcom(
    db: asyncpg.Pool, database_url: str
) -> None:
    settings = Settings(database_url=database_url)
    found = by_check(await run_checks(settings))
    assert found["Cal.com"].status == "warn"
    assert "the built-in simulator, not Cal.com" in found["Cal.com"].found
    assert found["RETELL_API_KEY"].status == "warn"
    assert found["CALCOM_WEBHOOK_SECRET"].status == "warn"


async def test_the_command_exits_0_when_ready_and_1_on_a_revoked_key(
    db: asyncpg.Pool, database_url: str, simulator: tuple[CalcomSimulator, str]
) -> None:
    sim, origin = simulator
    env = {"CALCOM_API_KEY": KEY, "CALCOM_BASE_URL": origin}
    ready = await booking_guard(database_url, "check", **env)
    assert ready.status == 0, ready.out + ready.err
    assert "booking-guard check" in ready.out and "listing bookings" in ready.out

    sim.revoked_keys.add(KEY)
    refused = await booking_guard(database_url, "check", "--json", **env)
    assert refused.status == 1, refused.out + refused.err
    calcom = next(row for row in json.loads(refused.out) if row["check"] == "Cal.com")
    assert calcom["status"] == "FAIL" and "CALCOM_API_KEY" in calcom["todo"]


async def test_an_unreachable_database_fails_and_names_database_url(
    simulator: tuple[CalcomSimulator, str],
) -> None:
    _, origin = simulator
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    nowhere = "postgresql://postgres@127.0.0.1:1/postgres"
    found = by_check(await run_checks(live(nowhere, origin)))
    assert found["PostgreSQL"].status == "FAIL"
    assert "DATABASE_URL" in found["PostgreSQL"].todo
    assert found["schema"].status == "skip" and found["Retell agents"].status == "skip"
    assert found["Cal.com"].status == "ok"  # the other checks still run
