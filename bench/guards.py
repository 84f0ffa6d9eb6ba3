"""Guard-chain overhead per attempt (issue 7, item 1): `run_guards` over the default chain.

In process, one attempt at a time, each `run_guards(default_guards(...), facts, booking)` timed
on its own. Behind layer 3 either an in-memory lookup (the chain's own cost) or the service's
`PoolAppointmentLookup` over a real appointments table of 10,000 rows (the chain as the workflow
runs it: one indexed query through the pool), the pool built and sized like the service's
request-path pool (no reset query on release; and, for comparison, one that sends it). Two
bookings: a fresh one that passes every layer, and the incident's (stale, another call's,
already held) that layers 1 to 3 all refuse, so the rejection details are built too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.harness import Context, Figure, Samples
from service.booking.appointment_lookup import PoolAppointmentLookup
from service.booking.guards import (
    AppointmentLookup,
    AttemptFacts,
    ExistingAppointment,
    Guard,
    default_guards,
    run_guards,
)
from service.calcom.port import CalcomBooking, to_calcom_time

BUDGET_SECONDS = 90
TARGET_P99_MS = 1.0
MAX_AGE = timedelta(seconds=30)
TABLE_ROWS = 10_000
POOL_SIZE = 10  # the service's default BOOKING_GUARD_POOL_MAX_SIZE

NOW = datetime(2025, 10, 6, 9, 4, 27, tzinfo=UTC)
SLOT = datetime(2025, 10, 10, 6, 0, tzinfo=UTC)
CALL = "call_39d2ade6f4fc16c51110ca49cdf"
OTHER_CALL = "call_927bf219b2cc20cd24dc97c9f0b"
EMAIL = "termin@example.com"


class InMemoryAppointments:
    """Layer 3's port over a dict: what the chain costs without the database."""

    def __init__(self, held: Sequence[ExistingAppointment]) -> None:
        self._by_uid = {a.booking_uid: a for a in held}

    async def by_booking_uid(self, booking_uid: str) -> ExistingAppointment | None:
        return self._by_uid.get(booking_uid)


def booking_uid(n: int) -> str:
    return f"bench{n:017d}"


def calcom_booking(uid: str, *, created_at: datetime, call_id: str) -> CalcomBooking:
    """A booking as the simulator (and Cal.com) answers it, parsed as the client parses it."""
    data: dict[str, Any] = {
        "id": 1,
        "uid": uid,
        "title": "Consultation between Plain Host and Hansi Sputer",
        "hosts": [{"id": 102, "name": "Plain Host", "email": "plain-host@example.com"}],
        "status": "accepted",
        "start": to_calcom_time(SLOT),
        "end": to_calcom_time(SLOT + timedelta(minutes=30)),
        "duration": 30,
        "eventTypeId": 1002,
        "eventType": {"id": 1002, "slug": "consultation"},
        "createdAt": to_calcom_time(created_at),
        "metadata": {"call_id": call_id, "attempt_id": str(uuid.uuid4())},
        "attendees": [{"name": "Hansi Sputer", "email": EMAIL, "timeZone": "Europe/Berlin"}],
    }
    return CalcomBooking.from_calcom(data)


def attempt_facts() -> AttemptFacts:
    return AttemptFacts(
        attempt_id=uuid.uuid4(),
        call_id=CALL,
        start=SLOT,
        attendee_email=EMAIL,
        first_called_at=NOW,
    )


def cases(held_uid: str, fresh_uid: str) -> dict[str, CalcomBooking]:
    """The two bookings each chain judges: one passing every layer, one the incident's."""
    return {
        "fresh booking, passes every layer": calcom_booking(
            fresh_uid, created_at=NOW - timedelta(seconds=2), call_id=CALL
        ),
        "the incident's booking, refused by layers 1-3": calcom_booking(
            held_uid, created_at=NOW - timedelta(minutes=35), call_id=OTHER_CALL
        ),
    }


async def time_chain(guards: Sequence[Guard], booking: CalcomBooking, count: int) -> list[float]:
    """Seconds per `run_guards` call, `count` calls one after the other."""
    facts = attempt_facts()
    expect_rejection = booking.metadata is not None and booking.metadata["call_id"] != CALL
    seconds: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        result = await run_guards(guards, facts, booking)
        seconds.append(time.perf_counter() - started)
        if (result.rejection is not None) != expect_rejection:
            raise AssertionError(f"unexpected verdicts: {result.failures()}")
    return seconds


def table_lookup(pool: asyncpg.Pool) -> AppointmentLookup:
    """The service's own lookup (service/booking/appointment_lookup.py) over `pool`."""
    return PoolAppointmentLookup(pool)


async def fill_appointments(ctx: Context) -> None:
    """TABLE_ROWS appointments, one of them held by OTHER_CALL under booking_uid(0)."""
    pool = await ctx.pool(1)
    try:
        await pool.execute(
            """
            INSERT INTO appointments (appointment_id, booking_uid, booking_id, call_id,
                                      attempt_id, event_type_id, start_at, end_at,
                                      attendee_name, attendee_email, confirmed_at, updated_at,
                                      origin_uid)
            SELECT gen_random_uuid(), 'bench' || lpad(n::text, 17, '0'), n,
                   CASE WHEN n = 0 THEN $1 ELSE 'call_' || md5(n::text) END,
                   gen_random_uuid(), 1002, $2::timestamptz + n * interval '30 minutes',
                   $2::timestamptz + (n + 1) * interval '30 minutes',
                   'Hansi Sputer', 'termin@example.com', $3, $3,
                   'bench' || lpad(n::text, 17, '0')
              FROM generate_series(0, $4 - 1) AS n
            """,
            OTHER_CALL,
            SLOT,
            NOW,
            TABLE_ROWS,
        )
        await pool.execute("VACUUM ANALYZE appointments")
    finally:
        await pool.close()


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    count = 2_000 if ctx.quick else 20_000
    db_count = 500 if ctx.quick else 3_000
    held = ExistingAppointment(uuid.uuid4(), OTHER_CALL, uuid.uuid4(), booking_uid(0))
    in_memory = default_guards(max_age=MAX_AGE, lookup=InMemoryAppointments([held]))
    await fill_appointments(ctx)
    pool = await ctx.pool(POOL_SIZE, reset_sessions=False)  # the service's, since 3a96440
    resetting_pool = await ctx.pool(POOL_SIZE)
    try:
        in_table = default_guards(max_age=MAX_AGE, lookup=table_lookup(pool))
        in_table_resetting = default_guards(max_age=MAX_AGE, lookup=table_lookup(resetting_pool))
        table = f"appointments table lookup ({TABLE_ROWS:,} rows)"
        chains = {
            "in-memory lookup": (in_memory, count),
            table: (in_table, db_count),
            f"{table}, pool with asyncpg's reset query (before 3a96440)": (
                in_table_resetting,
                db_count,
            ),
        }
        bookings = cases(held_uid=booking_uid(0), fresh_uid="fresh-uid-not-in-the-table")
        for run_index in range(ctx.runs):
            for chain_name, (guards, n) in chains.items():
                for case_name, booking in bookings.items():
                    await time_chain(guards, booking, n // 10)  # warm-up, untimed
                    seconds = await time_chain(guards, booking, n)
                    p50, p99 = samples.latencies(f"{chain_name}: {case_name}", seconds)
                    ctx.progress(
                        f"guards run {run_index + 1}: {chain_name}: {case_name}:"
                        f" p50 {p50 * 1000:.1f} µs, p99 {p99 * 1000:.1f} µs"
                    )
    finally:
        await pool.close()
        await resetting_pool.close()
    figures: list[Figure] = []
    for chain_name in chains:
        for case_name in bookings:
            figures += samples.latency_figures(
                f"{chain_name}: {case_name}", p99_target_ms=TARGET_P99_MS
            )
    return figures
