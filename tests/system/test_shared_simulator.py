"""`serve` processes without CALCOM_API_KEY share one built-in simulator, so one calendar."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from service.calcom.simulator.shared import record_path
from tests.e2e.served import body, future_slot
from tests.system.processes import ServiceProcess, Services

pytestmark = pytest.mark.slow

TAKEN_IS_400 = 1002  # the simulator's event type answering a taken slot with 400


@pytest.fixture
async def simulated(
    db: asyncpg.Pool, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Services, Path]]:
    """Processes on the test database, no Cal.com key, one data directory of the test's own."""
    data_dir = tmp_path / "postgres"
    started = Services(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "BOOKING_GUARD_DATA_DIR": str(data_dir),
            "BOOKING_GUARD_LOG_FORMAT": "json",
        },
    )
    try:
        yield started, data_dir
    finally:
        await started.close()


def recorded_pid(data_dir: Path) -> int:
    pid: int = orjson.loads(record_path(data_dir).read_bytes())["pid"]
    return pid


async def book(
    http: aiohttp.ClientSession, process: ServiceProcess, call: str, start: str
) -> tuple[int, dict[str, Any]]:
    request = body(call, start, email=f"{call}@example.com", event_type_id=TAKEN_IS_400)
    async with http.post(f"{process.url}/v1/booking-attempts", json=request) as response:
        return response.status, await response.json()


async def test_two_processes_book_one_slot_once(
    simulated: tuple[Services, Path], http: aiohttp.ClientSession, db: asyncpg.Pool
) -> None:
    services, data_dir = simulated
    # Started together: the lock makes them agree on one simulator.
    first, second = await asyncio.gather(services.start(), services.start())
    assert recorded_pid(data_dir) in (first.pid, second.pid)

    slot = future_slot(days=2, hour=10)
    answers = await asyncio.gather(
        book(http, first, "call_a", slot), book(http, second, "call_b", slot)
    )

    assert sorted(status for status, _ in answers) == [201, 409], answers
    (refused,) = [answer for status, answer in answers if status == 409]
    assert refused["reason"] == "slot_unavailable", refused
    assert await db.fetchval("SELECT count(*) FROM appointments") == 1


async def test_the_next_start_takes_over_from_an_owner_that_died(
    simulated: tuple[Services, Path], http: aiohttp.ClientSession
) -> None:
    services, data_dir = simulated
    owner = await services.start()
    assert recorded_pid(data_dir) == owner.pid
    owner.send(signal.SIGKILL)  # no cleanup: the record stays, naming a dead process
    await owner.wait()

    successor = await services.start()

    assert recorded_pid(data_dir) == successor.pid
    status, answer = await book(http, successor, "call_c", future_slot(days=2, hour=11))
    assert status == 201, answer


async def test_a_stopped_owner_removes_its_record(
    simulated: tuple[Services, Path],
) -> None:
    services, data_dir = simulated
    owner = await services.start()
    assert record_path(data_dir).exists()
    owner.send(signal.SIGTERM)
    assert await owner.wait() == 0, owner.log()
    assert not record_path(data_dir).exists()
