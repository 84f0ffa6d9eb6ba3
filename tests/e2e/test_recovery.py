"""The recovery loop drives attempts whose process died to an outcome, and reaps old keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from service.api.keys import POOL, WORKFLOW
from service.booking.attempt import ClaimedAttempt
from service.booking.clock import FakeClock
from service.booking.models import BookingRequest
from service.booking.recovery import RecoveryLoop
from service.calcom.client import HttpCalcomClient
from service.calcom.simulator.server import CalcomSimulator
from tests.conftest import wait_until
from tests.e2e.conftest import CALL_687, CALL_688, MakeHarness, attempt_body
from tests.e2e.served import body, future_slot, served_app, simulator_on_loopback, value


@pytest.fixture
async def simulator_url() -> AsyncIterator[tuple[CalcomSimulator, str]]:
    async with simulator_on_loopback() as served:
        yield served


async def test_the_loop_confirms_the_booking_a_dead_process_made(
    db: asyncpg.Pool, database_url: str, simulator_url: tuple[CalcomSimulator, str]
) -> None:
    simulator, base_url = simulator_url
    clock = FakeClock(datetime.now(UTC))
    async with AsyncExitStack() as stack:
        client = await served_app(
            stack,
            database_url=database_url,
            calcom_base_url=base_url,
            clock=clock,
            recovery_grace_seconds=1,
            recovery_interval_seconds=0.05,
        )
        workflow = client.app[WORKFLOW]
        request = BookingRequest.model_validate(body("call_dead", future_slot(), email="a@x.org"))
        # What a process that died after Cal.com booked but before recording leaves behind:
        # an intent, a booking in Cal.com, an in-flight key, and no outcome.
        claimed = await workflow.claim(request)
        assert isinstance(claimed, ClaimedAttempt)
        calcom = await stack.enter_async_context(
            HttpCalcomClient(api_key="cal_test_dead", base_url=base_url)
        )
        booking = await calcom.create_booking(claimed.attempt.create_request())

        clock.advance(timedelta(seconds=2))

        async def confirmed() -> bool:
            outcome = await workflow.outcome_of(claimed.attempt_id)
            return outcome is not None and outcome.status == "confirmed"

        await wait_until(confirmed, timeout=5)
        rows = await db.fetch("SELECT booking_uid, attempt_id FROM appointments")
        assert [(r["booking_uid"], r["attempt_id"]) for r in rows] == [
            (booking.uid, claimed.attempt_id)
        ]
        types = await db.fetch("SELECT type, data FROM events ORDER BY position")
        assert [t["type"] for t in types] == [
            "BookingRequested",
            "CalcomBookingReceived",
            "BookingConfirmed",
        ]
        assert types[1]["data"]["reconciled"] is True
        # Found by reconciling, not booked again.
        creates = [r for r in simulator.requests if r.method == "POST"]
        assert len(creates) == 1 and len(simulator.ledger.bookings) == 1

        text = await (await client.get("/metrics")).text()
        assert value(text, "booking_guard_recovered_attempts_total", outcome="confirmed") == 1


async def test_keys_finished_more_than_72_hours_ago_are_reaped(make_harness: MakeHarness) -> None:
    harness = await make_harness()
    app = harness.client.app
    assert (await harness.book(attempt_body(CALL_687)))[0] == 201
    harness.clock.advance(timedelta(hours=73))
    assert (await harness.book(attempt_body(CALL_688, start="2025-10-13T06:00:00Z")))[0] == 201

    loop = RecoveryLoop(app[WORKFLOW], app[POOL], harness.clock, interval=60)
    assert await loop.run_once() == 0

    keys = await harness.pool.fetch("SELECT key FROM idempotency_keys")
    assert len(keys) == 1 and CALL_688 in keys[0]["key"]
    assert await harness.event_count() == 6  # the ledger keeps every attempt's history
