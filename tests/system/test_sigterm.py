"""SIGTERM: the process stops accepting connections, finishes what is in flight, and exits 0."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import asyncpg
import pytest

from service.calcom.simulator.server import CalcomSimulator
from tests.conftest import wait_until
from tests.e2e.served import body, future_slot
from tests.system.processes import Services

pytestmark = pytest.mark.slow


async def test_sigterm_drains_the_request_in_flight_then_exits_cleanly(
    services: Services,
    simulator: tuple[CalcomSimulator, str],
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
) -> None:
    sim, _ = simulator
    sim.add_faults("delay:2000@create")  # Cal.com takes its time with this one
    service = await services.start()

    async def book() -> tuple[int, dict[str, object]]:
        request = body("call_sigterm", future_slot(), email="caller@example.com")
        async with http.post(f"{service.url}/v1/booking-attempts", json=request) as response:
            return response.status, await response.json()

    in_flight = asyncio.create_task(book())

    async def waiting_on_calcom() -> bool:
        return any(r.method == "POST" for r in sim.requests)

    await wait_until(waiting_on_calcom, timeout=10)
    service.send(signal.SIGTERM)

    async def refusing() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", service.port)
        except (ConnectionRefusedError, ConnectionResetError):
            # Refused once the listener is closed; reset if it closed with us in its backlog.
            return True
        writer.close()
        await writer.wait_closed()
        return False

    await wait_until(refusing, timeout=5)
    assert not in_flight.done(), "the request should still be waiting on Cal.com"

    status, answer = await in_flight
    assert status == 201, answer
    assert await service.wait(timeout=20) == 0, service.log()
    # The operator's view of it: the signal arrived with one request to wait for, then the end.
    log = service.log()
    assert "shutting down: 1 requests in flight" in log, log
    assert '"stopped"' in log, log
    assert log.index("shutting down") < log.index('"stopped"'), log
    outcome = await db.fetchval("SELECT count(*) FROM events WHERE type = 'BookingConfirmed'")
    assert outcome == 1
    assert await db.fetchval("SELECT count(*) FROM appointments") == 1
