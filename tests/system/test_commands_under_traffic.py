"""Commands started while bookings run: no 500, no deadlock (issue 11, item 8).

Before versioned migrations every command applied schema.sql at its start; its `CREATE INDEX IF
NOT EXISTS` lines locked tables in the opposite order to a booking's writes, and eight `audit`
runs during traffic cost 18 bookings a 500 among 1,477.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.e2e.served import body
from tests.system.processes import Services

pytestmark = pytest.mark.slow

WORKERS = 40
AUDITS = 8
MIN_BOOKINGS = 200
# Bookings go on until every audit has ended, but never beyond this.
MAX_BOOKINGS = 5_000


async def test_eight_audits_started_during_bookings_cause_no_500_and_no_deadlock(
    services: Services, http: aiohttp.ClientSession, db: asyncpg.Pool
) -> None:
    process = await services.start()
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
    numbers = itertools.count()
    answers: list[tuple[int, dict[str, Any]]] = []
    answered = asyncio.Condition()
    audits_over = asyncio.Event()

    def call_id(n: int) -> str:
        return f"call_traffic_{n:05d}"

    async def book() -> None:
        # A slot (30 minutes, the event type's length) and an attendee per call: each booking
        # is expected to be confirmed.
        while (n := next(numbers)) < MAX_BOOKINGS and (
            n < MIN_BOOKINGS or not audits_over.is_set()
        ):
            start = (base + timedelta(minutes=30 * n)).strftime("%Y-%m-%dT%H:%M:%SZ")
            attempt = body(call_id(n), start, email=f"caller-{n}@example.com")
            async with http.post(f"{process.url}/v1/booking-attempts", json=attempt) as response:
                answers.append((response.status, await response.json()))
            async with answered:
                answered.notify_all()

    async def bookings_reach(count: int) -> None:
        async with answered:
            await asyncio.wait_for(answered.wait_for(lambda: len(answers) >= count), timeout=60)

    async def audits() -> list[tuple[int, str]]:
        # Each audit starts a few bookings after the one before, with traffic in full flow,
        # and looks at a call already answered.
        running = []
        try:
            for n in range(AUDITS):
                await bookings_reach(20 + 5 * n)
                command = services.run_command("audit", "call", call_id(n))
                running.append(asyncio.create_task(command))
            return await asyncio.gather(*running)
        finally:
            audits_over.set()

    workers = [asyncio.create_task(book()) for _ in range(WORKERS)]
    try:
        audited = await audits()
    finally:
        await asyncio.gather(*workers)

    statuses = Counter(status for status, _ in answers)
    assert set(statuses) <= {201, 409}, [a for a in answers if a[0] not in (201, 409)][:5]
    assert len(answers) >= MIN_BOOKINGS
    # The traffic outlasted every audit: each ran entirely during bookings.
    assert len(answers) < MAX_BOOKINGS
    assert [status for status, _ in audited] == [0] * AUDITS, audited
    assert "deadlock" not in process.log()
    confirmed = await db.fetchval("SELECT count(*) FROM appointments")
    assert confirmed == statuses[201]
