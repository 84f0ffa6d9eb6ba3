"""Behaviours pinned by the edges issue: each test fails when the behaviour breaks."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from service.api.keys import WORKFLOW
from service.booking.attempt import ClaimedAttempt
from service.booking.models import BookingRequest
from tests.conftest import wait_until
from tests.e2e.conftest import (
    CALL_687,
    CALL_688,
    PLAIN,
    RETURNS_EXISTING,
    Harness,
    MakeHarness,
    attempt_body,
)


def creates(harness: Harness) -> int:
    return sum(
        1 for r in harness.simulator.requests if r.method == "POST" and r.path == "/v2/bookings"
    )


@pytest.mark.parametrize(
    ("gap", "guard"),
    [
        (timedelta(seconds=30), "call_identity"),  # the boundary passes freshness
        (timedelta(seconds=30, milliseconds=1), "freshness"),
        (timedelta(seconds=31), "freshness"),
    ],
)
async def test_freshness_refuses_just_above_the_30_second_boundary(
    harness: Harness, gap: timedelta, guard: str
) -> None:
    # Call 688 gets call 687's booking back; only its age decides which layer speaks first.
    status, _ = await harness.book(attempt_body(CALL_687))
    assert status == 201
    harness.clock.advance(gap)
    status, body = await harness.book(attempt_body(CALL_688, name="Hans Schuster"))
    assert status == 409, body
    assert body["guard"] == guard, body
    failures = [f["reason"] for f in body["detail"]["failures"]]
    assert ("stale_booking" in failures) == (guard == "freshness")


async def test_a_live_holders_key_answers_409_attempt_in_flight_with_retry_after(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(total_timeout=10, max_attempts=1)
    harness.simulator.add_faults("timeout:10@create")  # Cal.com hangs on the first create
    headers = {"Idempotency-Key": "k-in-flight"}
    first = asyncio.create_task(harness.book(attempt_body(), **headers))
    try:
        await wait_until(lambda: asyncio.sleep(0, creates(harness) == 1))
        response = await harness.client.post(
            "/v1/booking-attempts", json=attempt_body(), headers=headers
        )
        body = await response.json()
        assert response.status == 409, body
        assert body["error"] == "attempt_in_flight"
        assert 1 <= int(response.headers["Retry-After"]) <= 5
    finally:
        harness.simulator.release_hung()
        await first


async def test_attempt_ids_accumulate_over_retries_and_recovery(
    make_harness: MakeHarness,
) -> None:
    # A plain type answers a second create for the slot with 400: only attempt 1's id on the
    # booking lets the third attempt, driven by recovery, recognise it as ours.
    harness = await make_harness(
        max_attempts=1,
        total_timeout=0.3,
        settings_overrides={"recovery_interval_seconds": 0, "recovery_grace_seconds": 150},
    )
    body = attempt_body(event_type_id=PLAIN)
    key = {"Idempotency-Key": "k-accumulate"}
    harness.simulator.add_faults("timeout_after_write:1@create")
    status, first = await harness.book(body, **key)
    assert status == 504, first  # attempt 1 booked; its answer was lost
    (booking,) = harness.simulator.ledger.bookings.values()
    assert booking.metadata["attempt_id"] == first["attempt_id"]

    harness.simulator.add_faults("503@find")
    status, second = await harness.book(body, **key)
    assert status == 502, second  # attempt 2 could not look

    workflow = harness.client.app[WORKFLOW]
    claimed = await workflow.claim(
        BookingRequest.model_validate(body), idempotency_key=key["Idempotency-Key"]
    )
    assert isinstance(claimed, ClaimedAttempt)  # attempt 3, whose process then dies
    assert claimed.attempt.own_attempt_ids == {
        uuid.UUID(first["attempt_id"]),
        uuid.UUID(second["attempt_id"]),
        claimed.attempt_id,
    }
    harness.clock.advance(timedelta(seconds=151))
    (outcome,) = await workflow.recover_stale()
    assert outcome.status == "confirmed", outcome
    assert outcome.appointment is not None
    assert outcome.appointment.booking_uid == booking.uid
    assert len(harness.simulator.ledger.bookings) == 1

    status, replay = await harness.book(body, **key)
    assert status == 201 and replay["appointment"]["booking_uid"] == booking.uid


async def test_a_second_slot_in_the_same_call_books(harness: Harness) -> None:
    # The derived key is call + event type + start: another time, or another event type, is
    # another booking of the same call.
    status, first = await harness.book(attempt_body(event_type_id=PLAIN))
    assert status == 201, first
    status, second = await harness.book(
        attempt_body(event_type_id=PLAIN, start="2025-10-10T10:00:00Z")
    )
    assert status == 201, second
    status, third = await harness.book(attempt_body(event_type_id=RETURNS_EXISTING))
    assert status == 201, third
    ids = {first["appointment"]["booking_uid"], second["appointment"]["booking_uid"]}
    assert len(ids | {third["appointment"]["booking_uid"]}) == 3
    assert await harness.appointment_count() == 3


async def test_reconciliation_ignores_a_booking_naming_another_attempt(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(max_attempts=1)
    body = attempt_body(event_type_id=PLAIN)
    key = {"Idempotency-Key": "k-foreign"}
    harness.simulator.add_faults("503@create")
    status, failed = await harness.book(body, **key)
    assert status == 502, failed
    # Meanwhile someone books the same attendee and slot, naming this call but not one of its
    # attempts (a copy of our metadata, another system, a replayed request).
    foreign = await harness.client.session.post(
        f"{harness.simulator_url}/v2/bookings",
        json={
            "start": "2025-10-10T06:00:00.000Z",
            "eventTypeId": PLAIN,
            "attendee": {
                "name": "Hansi Sputer",
                "timeZone": "Europe/Berlin",
                "email": "termin@example.com",
            },
            "metadata": {"call_id": CALL_687, "attempt_id": str(uuid.uuid4())},
        },
        headers={"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test"},
    )
    assert foreign.status == 201
    status, retry = await harness.book(body, **key)
    assert status == 409, retry  # reconciled, found nothing of ours; the slot is taken
    assert retry["reason"] == "slot_unavailable"
    assert await harness.appointment_count() == 0


async def test_the_same_calls_retry_with_a_new_key_answers_with_its_appointment(
    harness: Harness,
) -> None:
    status, first = await harness.book(attempt_body(), **{"Idempotency-Key": "k-1"})
    assert status == 201, first
    status, again = await harness.book(attempt_body(), **{"Idempotency-Key": "k-2"})
    assert status == 200, again
    assert again["status"] == "confirmed"
    assert again["appointment"]["appointment_id"] == first["appointment"]["appointment_id"]
    assert await harness.appointment_count() == 1
