"""Fifty calls race for one slot: exactly one appointment, whatever stops the others."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.e2e.conftest import PLAIN, Harness, MakeHarness, attempt_body

RACERS = 50


async def race(harness: Harness, event_type_id: int) -> list[tuple[int, dict[str, object]]]:
    bodies = [
        attempt_body(f"call_race_{n:02d}", name=f"Caller {n}", event_type_id=event_type_id)
        for n in range(RACERS)
    ]
    return list(await asyncio.gather(*(harness.book(body) for body in bodies)))


async def test_fifty_calls_for_one_slot_make_one_appointment(harness: Harness) -> None:
    results = await race(harness, 1001)
    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 409: RACERS - 1}
    rejected = [body for status, body in results if status == 409]
    assert all(body["reason"] for body in rejected)
    # Cal.com returned the winner's booking to everyone (same fallback e-mail): call identity.
    assert Counter(body["reason"] for body in rejected) == {"call_id_mismatch": RACERS - 1}
    assert await harness.appointment_count() == 1


async def test_fifty_calls_for_a_plain_slot_are_refused_by_calcom(harness: Harness) -> None:
    results = await race(harness, PLAIN)
    assert Counter(status for status, _ in results) == {201: 1, 409: RACERS - 1}
    reasons = Counter(body["reason"] for status, body in results if status == 409)
    assert reasons == {"slot_unavailable": RACERS - 1}
    assert await harness.appointment_count() == 1


async def test_with_layers_1_to_3_off_the_unique_index_alone_stops_the_race(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(guards_enabled=False)
    results = await race(harness, 1001)
    assert Counter(status for status, _ in results) == {201: 1, 409: RACERS - 1}
    rejected = [body for status, body in results if status == 409]
    assert {(body["guard"], body["reason"]) for body in rejected} == {
        ("database_constraint", "duplicate_booking")
    }
    assert await harness.appointment_count() == 1
    confirmed = await harness.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'BookingConfirmed'"
    )
    assert confirmed == 1
    # Every attempt has exactly one outcome event.
    outcomes = await harness.pool.fetchval(
        "SELECT count(*) FROM events"
        " WHERE type IN ('BookingConfirmed', 'BookingRejected', 'BookingFailed')"
    )
    assert outcomes == RACERS
