"""Three service processes, one database, 100 concurrent attempts for ten slots."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import asyncpg
import pytest

from service.calcom.simulator.server import CalcomSimulator
from tests.e2e.served import body, future_slot, samples
from tests.system.processes import Services

pytestmark = pytest.mark.slow

ATTEMPTS = 100
SLOTS = 10
# Cal.com says the slot is taken, or hands back the slot's booking (same attendee e-mail) and
# a guard refuses it as another call's.
REJECTION_REASONS = {"slot_unavailable", "call_id_mismatch", "duplicate_booking", "stale_booking"}


def attempt(n: int) -> dict[str, Any]:
    slot = n % SLOTS
    # Half the callers of a slot share one e-mail (the incident's fallback address), half not.
    email = f"shared-{slot}@example.com" if n % 2 == 0 else f"caller-{n}@example.com"
    return body(
        f"call_{n:03d}", future_slot(days=2, hour=8 + slot), email=email, event_type_id=1001
    )


async def test_ten_appointments_and_ninety_reasoned_rejections(
    services: Services,
    simulator: tuple[CalcomSimulator, str],
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
) -> None:
    processes = await asyncio.gather(*(services.start() for _ in range(3)))

    async def post(n: int) -> tuple[int, dict[str, Any]]:
        url = f"{processes[n % 3].url}/v1/booking-attempts"
        async with http.post(url, json=attempt(n)) as response:
            return response.status, await response.json()

    answers = await asyncio.gather(*(post(n) for n in range(ATTEMPTS)))

    statuses = Counter(status for status, _ in answers)
    assert statuses == {201: SLOTS, 409: ATTEMPTS - SLOTS}, answers
    for status, answer in answers:
        if status == 409:
            assert answer["status"] == "rejected" and answer["reason"] in REJECTION_REASONS, answer

    appointments = await db.fetch("SELECT booking_uid, start_at FROM appointments")
    assert len(appointments) == SLOTS
    assert len({a["start_at"] for a in appointments}) == SLOTS
    assert len({a["booking_uid"] for a in appointments}) == SLOTS
    assert len(simulator[0].ledger.bookings) == SLOTS

    per_attempt = await db.fetch(
        """
        SELECT stream_id,
               count(*) FILTER (WHERE type = 'BookingRequested') AS intents,
               count(*) FILTER (WHERE type IN ('BookingConfirmed', 'BookingRejected',
                                               'BookingFailed')) AS outcomes
          FROM events GROUP BY stream_id
        """
    )
    assert len(per_attempt) == ATTEMPTS
    assert all(row["intents"] == 1 and row["outcomes"] == 1 for row in per_attempt)

    # Whichever process is scraped, the ledger totals are the global ones.
    for process in processes:
        async with http.get(f"{process.url}/metrics") as response:
            found = samples(await response.text())
        outcomes = "booking_guard_attempt_outcomes_total"
        assert found[(outcomes, frozenset({("outcome", "confirmed")}))] == SLOTS
        assert found[(outcomes, frozenset({("outcome", "rejected")}))] == ATTEMPTS - SLOTS
        assert found[("booking_guard_unique_index_refusals_total", frozenset())] == 0
