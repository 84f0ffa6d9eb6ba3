"""An attempt recovery cannot finish is parked after BOOKING_GUARD_RECOVERY_MAX_TRIES, shown by
/ready and /metrics, and handed back by `booking-guard attempts resume`."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import timedelta

import pytest

from service.api.keys import METRICS, POOL, STORE, WORKFLOW
from service.booking.attempt import ClaimedAttempt
from service.booking.models import BookingRequest
from service.booking.recovery import Parking, RecoveryLoop
from service.cli.attempts import run_attempts_command
from service.settings import Settings
from tests.e2e.conftest import Harness, MakeHarness
from tests.e2e.served import value

MAX_TRIES = 2
GRACE = timedelta(seconds=150)


async def lost_intent(harness: Harness) -> uuid.UUID:
    """An in-flight key whose attempt's intent is gone: every recovery pass raises on it."""
    attempt_id = uuid.uuid4()
    await harness.pool.execute(
        """
        INSERT INTO idempotency_keys (key, fingerprint, attempt_id, status, holder, locked_at,
                                      first_called_at, created_at, attempt_ids)
        VALUES ('k-poison', 'v2:x', $1, 'in_flight', 'dead:1', $2, $2, $2, ARRAY[$1::uuid])
        """,
        attempt_id,
        harness.clock.now() - timedelta(hours=1),
    )
    return attempt_id


def recovery(harness: Harness) -> RecoveryLoop:
    app = harness.client.app
    return RecoveryLoop(
        app[WORKFLOW],
        app[POOL],
        harness.clock,
        interval=60,
        metrics=app[METRICS],
        parking=Parking(store=app[STORE], max_tries=MAX_TRIES, grace=GRACE),
    )


async def stream_types(harness: Harness, attempt_id: uuid.UUID) -> list[str]:
    rows = await harness.pool.fetch(
        "SELECT type FROM events WHERE stream_id = $1 ORDER BY version", f"attempt-{attempt_id}"
    )
    return [row["type"] for row in rows]


async def test_an_attempt_failing_every_recovery_pass_is_parked_then_resumed(
    make_harness: MakeHarness, database_url: str
) -> None:
    harness = await make_harness()
    attempt_id = await lost_intent(harness)
    loop = recovery(harness)

    for _ in range(MAX_TRIES):
        with pytest.raises(LookupError):
            await loop.run_once()
        harness.clock.advance(GRACE * 2)

    assert await loop.run_once() == 0  # parked, not tried a third time
    assert await stream_types(harness, attempt_id) == ["AttemptParked"]
    parked = await harness.pool.fetchrow(
        "SELECT parked_at, recovery_tries FROM idempotency_keys WHERE key = 'k-poison'"
    )
    assert parked is not None
    assert parked["parked_at"] is not None and parked["recovery_tries"] == MAX_TRIES
    harness.clock.advance(GRACE * 2)
    assert await loop.run_once() == 0  # and left alone afterwards

    ready = await (await harness.client.get("/ready")).json()
    assert ready["checks"]["parked_attempts"] == 1
    assert ready["checks"]["stale_in_flight_attempts"] == 0
    exposition = await (await harness.client.get("/metrics")).text()
    assert value(exposition, "booking_guard_parked_attempts") == 1
    assert value(exposition, "booking_guard_attempts_parked_total") == 1

    args = argparse.Namespace(attempt_id=str(attempt_id))
    settings = Settings(database_url=database_url)
    assert await asyncio.to_thread(run_attempts_command, args, settings) == 0
    assert await stream_types(harness, attempt_id) == ["AttemptParked", "AttemptResumed"]
    resumed = await harness.pool.fetchrow(
        "SELECT parked_at, recovery_tries FROM idempotency_keys WHERE key = 'k-poison'"
    )
    assert resumed is not None
    assert resumed["parked_at"] is None and resumed["recovery_tries"] == 0
    with pytest.raises(LookupError):  # back in recovery's hands
        await loop.run_once()

    # Resuming what is not parked says so.
    assert await asyncio.to_thread(run_attempts_command, args, settings) == 1


async def test_a_recovered_attempt_is_never_parked(make_harness: MakeHarness) -> None:
    harness = await make_harness()
    request = BookingRequest.model_validate(
        {
            "call_id": "call_ok",
            "event_type_id": 1002,
            "start": "2025-10-10T06:00:00Z",
            "attendee": {"name": "Hans", "email": "h@example.com", "time_zone": "UTC"},
        }
    )
    # Phase 1 alone: the intent and an in-flight key, as a process that died right after.
    claimed = await harness.client.app[WORKFLOW].claim(request)
    assert isinstance(claimed, ClaimedAttempt)
    harness.clock.advance(GRACE * 2)
    assert await recovery(harness).run_once() == 1
    parked = await harness.pool.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE parked_at IS NOT NULL"
    )
    assert parked == 0
