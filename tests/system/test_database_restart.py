"""PostgreSQL stopped and started under traffic: 503 with Retry-After meanwhile, /ready says why,
the service recovers by itself, and every answer it acknowledged is in the ledger."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.calcom.simulator.server import CalcomSimulator
from tests.conftest import wait_until
from tests.e2e.served import body
from tests.system.dedicated_postgres import DedicatedPostgres
from tests.system.processes import ServiceProcess, Services

pytestmark = pytest.mark.slow

WORKERS = 3


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    retry_after: str | None
    sent_while_down: bool


@pytest.fixture
async def postgres() -> AsyncIterator[DedicatedPostgres]:
    server = await DedicatedPostgres.create()
    try:
        yield server
    finally:
        await server.remove()


class Traffic:
    """Producers booking distinct slots, one request after another, until stopped."""

    def __init__(self, http: aiohttp.ClientSession, service: ServiceProcess) -> None:
        self._http = http
        self._service = service
        self._slots = itertools.count()
        self._base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(
            days=2
        )
        self.answers: list[Answer] = []
        self.database_down = False
        self._stop = asyncio.Event()

    async def _producer(self, worker: int) -> None:
        while not self._stop.is_set():
            n = next(self._slots)
            start = (self._base + timedelta(minutes=30 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            request = body(f"call_{worker}_{n}", start, email=f"caller-{n}@example.com")
            down = self.database_down
            url = f"{self._service.url}/v1/booking-attempts"
            async with self._http.post(url, json=request) as response:
                answer = Answer(
                    response.status,
                    await response.json(),
                    response.headers.get("Retry-After"),
                    down,
                )
            self.answers.append(answer)

    async def run(self) -> None:
        await asyncio.gather(*(self._producer(w) for w in range(WORKERS)))

    def stop(self) -> None:
        self._stop.set()

    def count(self, status: int, *, while_down: bool | None = None) -> int:
        return sum(
            1
            for a in self.answers
            if a.status == status and (while_down is None or a.sent_while_down == while_down)
        )


async def test_an_outage_is_survived_without_losing_an_acknowledged_booking(
    services: Services,
    simulator: tuple[CalcomSimulator, str],
    http: aiohttp.ClientSession,
    postgres: DedicatedPostgres,
) -> None:
    service = await services.start(
        DATABASE_URL=postgres.dsn,
        BOOKING_GUARD_RECOVERY_GRACE_SECONDS=1,
        BOOKING_GUARD_RECOVERY_INTERVAL_SECONDS=0.2,
    )
    traffic = Traffic(http, service)
    producers = asyncio.create_task(traffic.run())
    try:

        async def some(status: int, n: int, *, while_down: bool | None = None) -> bool:
            return traffic.count(status, while_down=while_down) >= n

        await wait_until(lambda: some(201, 5), timeout=10)
        traffic.database_down = True
        await postgres.stop()
        await wait_until(lambda: some(503, 5, while_down=True), timeout=10)

        async with http.get(f"{service.url}/ready") as response:
            assert response.status == 503
            ready = await response.json()
        assert ready["status"] == "not_ready"
        assert ready["reasons"][0].startswith("database unavailable: "), ready

        await postgres.start()
        traffic.database_down = False

        async def ready_again() -> bool:
            async with http.get(f"{service.url}/ready") as response:
                return response.status == 200

        await wait_until(ready_again, timeout=15, interval=0.1)
        confirmed_before = traffic.count(201)
        await wait_until(lambda: some(201, confirmed_before + 5), timeout=10)
    finally:
        traffic.stop()
        await producers

    assert {a.status for a in traffic.answers} <= {201, 503}, traffic.answers
    for answer in traffic.answers:
        if answer.status == 503:
            assert answer.body["error"] == "database_unavailable", answer
            assert answer.retry_after is not None and int(answer.retry_after) > 0

    conn = await asyncpg.connect(postgres.dsn)
    try:
        # Attempts caught between intent and outcome are finished by the recovery loop.
        async def nothing_in_flight() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM idempotency_keys WHERE status = 'in_flight'"
            )
            return bool(n == 0)

        await wait_until(nothing_in_flight, timeout=15, interval=0.1)
        confirmed = {
            row["attempt_id"]
            for row in await conn.fetch(
                "SELECT data ->> 'attempt_id' AS attempt_id FROM events"
                " WHERE type = 'BookingConfirmed'"
            )
        }
        acknowledged = {a.body["attempt_id"] for a in traffic.answers if a.status == 201}
        assert acknowledged <= confirmed
        appointments = await conn.fetchval("SELECT count(*) FROM appointments")
        assert appointments == len(confirmed) == len(simulator[0].ledger.bookings)
        unfinished = await conn.fetchval(
            """
            SELECT count(*) FROM (
                SELECT stream_id FROM events GROUP BY stream_id
                HAVING count(*) FILTER (WHERE type IN ('BookingConfirmed', 'BookingRejected',
                                                       'BookingFailed')) <> 1
            ) AS s
            """
        )
        assert unfinished == 0
    finally:
        await conn.close()
