"""SIGKILL after Cal.com booked, before the outcome was recorded: a restart finishes the attempt."""

from __future__ import annotations

import asyncio
import signal
import uuid

import aiohttp
import asyncpg
import pytest

from events.booking import attempt_stream
from service.calcom.simulator.server import CalcomSimulator
from tests.conftest import wait_until
from tests.e2e.served import body, future_slot
from tests.system.processes import Services

pytestmark = pytest.mark.slow


async def test_a_killed_attempt_ends_with_one_outcome_and_one_appointment(
    services: Services,
    simulator: tuple[CalcomSimulator, str],
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
) -> None:
    sim, _ = simulator
    # Cal.com writes the booking, then keeps the answer back: the process is mid-attempt.
    sim.add_faults("timeout_after_write:30@create")
    doomed = await services.start()
    request = body("call_sigkill", future_slot(), email="caller@example.com")
    headers = {"Idempotency-Key": "call_sigkill-1"}
    post = asyncio.create_task(
        http.post(f"{doomed.url}/v1/booking-attempts", json=request, headers=headers)
    )

    async def booked_and_hanging() -> bool:
        return len(sim.ledger.bookings) == 1

    await wait_until(booked_and_hanging, timeout=10)
    (row,) = await db.fetch("SELECT data FROM events WHERE type = 'BookingRequested'")
    attempt_id = uuid.UUID(row["data"]["attempt_id"])

    doomed.send(signal.SIGKILL)
    assert await doomed.wait() == -signal.SIGKILL
    with pytest.raises(aiohttp.ClientError):
        await post
    sim.release_hung()
    assert await db.fetchval("SELECT count(*) FROM events") == 1  # the intent, nothing after

    # A new process, short grace period: its recovery loop takes the orphaned attempt.
    survivor = await services.start(
        BOOKING_GUARD_RECOVERY_GRACE_SECONDS=1, BOOKING_GUARD_RECOVERY_INTERVAL_SECONDS=0.2
    )

    async def outcome() -> dict[str, object] | None:
        async with http.get(f"{survivor.url}/v1/booking-attempts/{attempt_id}") as response:
            answer: dict[str, object] = await response.json()
            return answer if answer["status"] != "pending" else None

    answer = await wait_until(outcome, timeout=15)
    assert answer is not None and answer["status"] == "confirmed", answer

    stream = attempt_stream(attempt_id)
    types = await db.fetch("SELECT type FROM events WHERE stream_id = $1 ORDER BY version", stream)
    assert [t["type"] for t in types] == [
        "BookingRequested",
        "CalcomBookingReceived",
        "BookingConfirmed",
    ]
    appointments = await db.fetch("SELECT booking_uid, attempt_id FROM appointments")
    assert [(a["booking_uid"], a["attempt_id"]) for a in appointments] == [
        (next(iter(sim.ledger.bookings.values())).uid, attempt_id)
    ]
    assert len(sim.ledger.bookings) == 1
    assert sum(1 for r in sim.requests if r.method == "POST") == 1  # found, not booked again

    # The producer's retry gets the recorded answer.
    async with http.post(
        f"{survivor.url}/v1/booking-attempts", json=request, headers=headers
    ) as response:
        assert response.status == 201
        assert response.headers["Idempotent-Replayed"] == "true"
        assert (await response.json())["attempt_id"] == str(attempt_id)
