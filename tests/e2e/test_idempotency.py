"""Idempotency keys: a request sent again never books twice and gets the same answer."""

from __future__ import annotations

from datetime import timedelta

from tests.e2e.conftest import CALL_687, PLAIN, Harness, MakeHarness, attempt_body


def creates(harness: Harness) -> int:
    return sum(
        1 for r in harness.simulator.requests if r.method == "POST" and r.path == "/v2/bookings"
    )


async def test_the_same_request_twice_with_one_key_books_once(harness: Harness) -> None:
    first = await harness.client.post(
        "/v1/booking-attempts", json=attempt_body(), headers={"Idempotency-Key": "k-1"}
    )
    second = await harness.client.post(
        "/v1/booking-attempts", json=attempt_body(), headers={"Idempotency-Key": "k-1"}
    )
    assert first.status == second.status == 201
    assert await first.json() == await second.json()
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert creates(harness) == 1
    assert len(harness.simulator.ledger.bookings) == 1
    assert await harness.appointment_count() == 1


async def test_without_a_key_the_call_and_slot_are_the_key(harness: Harness) -> None:
    status_1, body_1 = await harness.book(attempt_body())
    status_2, body_2 = await harness.book(attempt_body())
    assert (status_1, status_2) == (201, 201)
    assert body_1 == body_2
    assert creates(harness) == 1


async def test_the_same_key_with_another_body_is_422_and_writes_nothing(
    harness: Harness,
) -> None:
    await harness.book(attempt_body(), **{"Idempotency-Key": "k-1"})
    before = await harness.event_count()
    status, body = await harness.book(
        attempt_body(name="Somebody Else"), **{"Idempotency-Key": "k-1"}
    )
    assert status == 422
    assert body["error"] == "idempotency_key_reused"
    assert await harness.event_count() == before


async def test_the_clients_retry_after_a_lost_answer_gets_its_own_booking(
    harness: Harness,
) -> None:
    """Cal.com booked, but its answer never came; the client's retry gets the same booking."""
    harness.simulator.add_faults("timeout_after_write@create")
    status, body = await harness.book(attempt_body())
    assert status == 201, body
    assert creates(harness) == 2
    assert len(harness.simulator.ledger.bookings) == 1


async def test_a_plain_slot_taken_by_our_own_lost_create_is_ours(harness: Harness) -> None:
    harness.simulator.add_faults("timeout_after_write@create")
    status, body = await harness.book(attempt_body(event_type_id=PLAIN))
    # The retry's 400 "not available" is checked against Cal.com before it means "taken".
    assert status == 201, body
    assert len(harness.simulator.ledger.bookings) == 1


async def test_a_producer_retry_after_a_timeout_finds_its_own_booking(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(max_attempts=1)
    harness.simulator.add_faults("timeout_after_write@create")
    status, failed = await harness.book(attempt_body(), **{"Idempotency-Key": "k-lost"})
    assert status == 504, failed
    assert failed["retryable"] is True
    assert len(harness.simulator.ledger.bookings) == 1

    # Even 35 minutes later: freshness counts from the key's first call to Cal.com.
    harness.clock.advance(timedelta(minutes=35))
    status, retried = await harness.book(attempt_body(), **{"Idempotency-Key": "k-lost"})
    assert status == 201, retried
    assert retried["attempt_id"] != failed["attempt_id"]
    # Reconciled, not re-sent: the retry looked the booking up instead of creating again.
    assert creates(harness) == 1
    assert len(harness.simulator.ledger.bookings) == 1
    assert await harness.appointment_count() == 1
    rows = await harness.pool.fetch(
        "SELECT data FROM events WHERE type = 'BookingRequested' ORDER BY position"
    )
    assert rows[1]["data"]["retry_of"] == failed["attempt_id"]


async def test_the_attempt_can_be_read_back(harness: Harness) -> None:
    _, body = await harness.book(attempt_body(CALL_687))
    response = await harness.client.get(f"/v1/booking-attempts/{body['attempt_id']}")
    assert response.status == 200
    assert await response.json() == body
    appointment_id = body["appointment"]["appointment_id"]
    response = await harness.client.get(f"/v1/appointments/{appointment_id}")
    assert (await response.json())["booking_uid"] == body["appointment"]["booking_uid"]


async def test_an_escaped_fallback_address_is_found_again_when_reconciling(
    make_harness: MakeHarness,
) -> None:
    # The first create's answer is lost after Cal.com wrote it; the retry must find that
    # booking under the address recorded on the attempt (termin+call=3A77@...), not book again.
    harness = await make_harness(
        fallback_email="termin@example.com", max_attempts=1, total_timeout=0.3
    )
    harness.simulator.add_faults("timeout_after_write@create")
    body = attempt_body("call:77", email=None, event_type_id=PLAIN)
    status, first = await harness.book(body)
    assert status == 504, first
    status, second = await harness.book(body)
    assert status == 201, second
    assert creates(harness) == 1
    assert len(harness.simulator.ledger.bookings) == 1
    (booking,) = harness.simulator.ledger.bookings.values()
    assert booking.attendee["email"] == "termin+call=3A77@example.com"
