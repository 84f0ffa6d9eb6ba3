"""Parked attempts: recovery stops retrying an attempt that failed it too often.

An attempt whose recovery raises on every pass (an answer nothing can read, a bug, an intent
gone missing) would be retried every grace period for ever, hiding among the stale attempts and
costing a Cal.com lookup each time. After BOOKING_GUARD_RECOVERY_MAX_TRIES take-overs without an
outcome it is parked: `AttemptParked` on its stream, `parked_at` on its key, counted in
`booking_guard_parked_attempts` (an alert) and shown by /ready. An operator looks at it
(`booking-guard audit call`), fixes the cause and resumes it (`booking-guard attempts resume`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from events.booking import AttemptParked, AttemptResumed, BookingRequested, attempt_stream
from events.models import NewEvent
from events.store import EventStore, ExpectedVersion

# Stale, unparked keys that used up their tries; parked in the same statement, so two
# processes' recovery loops never park one attempt twice.
_PARK = """
UPDATE idempotency_keys
   SET parked_at = $3
 WHERE status = 'in_flight' AND parked_at IS NULL AND recovery_tries >= $1 AND locked_at < $2
RETURNING key, attempt_id, recovery_tries
"""

_RESUME = """
UPDATE idempotency_keys
   SET parked_at = NULL, recovery_tries = 0
 WHERE attempt_id = $1 AND parked_at IS NOT NULL
RETURNING key
"""

_COUNT = "SELECT count(*) FROM idempotency_keys WHERE parked_at IS NOT NULL"


class NotParked(LookupError):
    """The attempt is not parked (unknown, finished, or already resumed)."""


async def park_exhausted(
    pool: asyncpg.Pool,
    store: EventStore,
    *,
    max_tries: int,
    stale_before: datetime,
    now: datetime,
) -> list[AttemptParked]:
    """Park every stale attempt recovery has taken over `max_tries` times; the events written."""
    parked: list[AttemptParked] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_PARK, max_tries, stale_before, now)
        for row in rows:
            call_id = await _call_id(store, row["attempt_id"])
            event = AttemptParked(
                attempt_id=row["attempt_id"],
                call_id=call_id,
                idempotency_key=row["key"],
                recovery_tries=row["recovery_tries"],
                parked_at=now,
            )
            await store.append(
                attempt_stream(row["attempt_id"]),
                [NewEvent(event)],
                expected_version=ExpectedVersion.ANY,
                connection=conn,
            )
            parked.append(event)
    return parked


async def resume(
    pool: asyncpg.Pool, store: EventStore, attempt_id: uuid.UUID, *, now: datetime
) -> AttemptResumed:
    """Hand a parked attempt back to recovery with a fresh count; NotParked if it is not."""
    async with pool.acquire() as conn, conn.transaction():
        key = await conn.fetchval(_RESUME, attempt_id)
        if key is None:
            raise NotParked(f"attempt {attempt_id} is not parked")
        event = AttemptResumed(
            attempt_id=attempt_id, call_id=await _call_id(store, attempt_id), resumed_at=now
        )
        await store.append(
            attempt_stream(attempt_id),
            [NewEvent(event)],
            expected_version=ExpectedVersion.ANY,
            connection=conn,
        )
    return event


async def parked_count(pool: asyncpg.Pool) -> int:
    """How many attempts are parked now."""
    count: int = await pool.fetchval(_COUNT)
    return count


async def _call_id(store: EventStore, attempt_id: uuid.UUID) -> str:
    # The intent names the call; an attempt parked because its intent is missing has none.
    events = await store.read_stream(attempt_stream(attempt_id), limit=1)
    if events and isinstance(events[0].event, BookingRequested):
        return events[0].event.call_id
    return "unknown"
