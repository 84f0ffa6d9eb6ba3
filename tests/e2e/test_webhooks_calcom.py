"""Cal.com webhooks: cancellations and reschedules reach the appointments, redelivery changes
nothing, a booking made behind the guard's back is recorded and counted, and nothing unsigned
gets in."""

from __future__ import annotations

from typing import Any

import pytest

from service.api.signatures import calcom_signature
from service.calcom.simulator.event_types import CONFIRMATION_EVENT_TYPE_ID
from tests.e2e.conftest import CALL_687, PLAIN, Harness, MakeHarness, attempt_body
from tests.e2e.signed import CALCOM_SECRET, post_calcom

NEW_START = "2025-10-10T09:00:00Z"


@pytest.fixture
async def calcom(make_harness: MakeHarness) -> Harness:
    return await make_harness(calcom_webhook_secret=CALCOM_SECRET)


async def booked(harness: Harness) -> dict[str, Any]:
    status, answer = await harness.book(attempt_body(event_type_id=PLAIN))
    assert status == 201, answer
    appointment: dict[str, Any] = answer["appointment"]
    return appointment


def webhook(trigger: str, uid: str, **payload: Any) -> dict[str, Any]:
    return {
        "triggerEvent": trigger,
        "createdAt": "2025-10-06T10:00:00.000Z",
        "payload": {
            "uid": uid,
            "bookingId": 42,
            "eventTypeId": PLAIN,
            "startTime": "2025-10-10T06:00:00Z",
            "endTime": "2025-10-10T06:30:00Z",
            "status": "ACCEPTED",
            "attendees": [{"name": "Hansi Sputer", "email": "hansi@example.com"}],
            "organizer": {"name": "Host", "email": "host@example.com"},
            **payload,
        },
    }


async def appointment_row(harness: Harness, appointment_id: str) -> dict[str, Any]:
    response = await harness.client.get(f"/v1/appointments/{appointment_id}")
    assert response.status == 200
    row: dict[str, Any] = await response.json()
    return row


async def unguarded_total(harness: Harness) -> float:
    """The counter as /metrics shows it."""
    text = await (await harness.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith("booking_guard_unguarded_bookings_total "):
            return float(line.split()[1])
    raise AssertionError("booking_guard_unguarded_bookings_total is not in /metrics")


async def test_a_cancellation_reaches_the_appointment_once(calcom: Harness) -> None:
    appointment = await booked(calcom)
    calcom.simulator.ledger.cancel(
        appointment["booking_uid"], reason="Caller cannot make it", now=calcom.clock.now()
    )
    body = webhook(
        "BOOKING_CANCELLED",
        appointment["booking_uid"],
        status="CANCELLED",
        cancellationReason="Caller cannot make it",
        metadata={"call_id": CALL_687},
    )
    response = await post_calcom(calcom, body)
    assert response.status == 200
    assert await response.json() == {
        "status": "recorded",
        "trigger": "BOOKING_CANCELLED",
        "recorded": ["BookingCancelled"],
    }
    assert (await appointment_row(calcom, appointment["appointment_id"]))["status"] == "cancelled"

    before = await calcom.event_count()
    again = await post_calcom(calcom, body)
    assert (await again.json())["status"] == "already_recorded"
    assert await calcom.event_count() == before


async def test_a_reschedule_moves_the_one_appointment_to_the_new_booking(calcom: Harness) -> None:
    appointment = await booked(calcom)
    new = calcom.simulator.ledger.reschedule(
        appointment["booking_uid"], {"start": NEW_START}, now=calcom.clock.now()
    )
    body = webhook(
        "BOOKING_RESCHEDULED",
        new.uid,
        rescheduleUid=appointment["booking_uid"],
        startTime=NEW_START,
        endTime="2025-10-10T09:30:00Z",
        rescheduleStartTime="2025-10-10T06:00:00Z",
    )
    response = await post_calcom(calcom, body)
    assert (await response.json())["recorded"] == ["BookingRescheduled"]
    row = await appointment_row(calcom, appointment["appointment_id"])
    assert row["booking_uid"] == new.uid
    assert row["start"].startswith("2025-10-10T09:00:00")
    assert row["status"] == "booked"
    assert await calcom.appointment_count() == 1

    before = await calcom.event_count()
    assert (await (await post_calcom(calcom, body)).json())["status"] == "already_recorded"
    assert await calcom.event_count() == before
    stream = await calcom.pool.fetchval(
        "SELECT stream_id FROM events WHERE type = 'BookingRescheduled'"
    )
    assert stream == f"calcom-booking-{appointment['booking_uid']}"


async def test_a_booking_created_by_booking_guard_is_observed_not_alarmed(calcom: Harness) -> None:
    appointment = await booked(calcom)
    metadata = {"call_id": CALL_687, "attempt_id": appointment["attempt_id"]}
    before = await unguarded_total(calcom)
    response = await post_calcom(
        calcom, webhook("BOOKING_CREATED", appointment["booking_uid"], metadata=metadata)
    )
    assert (await response.json())["recorded"] == ["CalcomBookingCreatedObserved"]
    assert await unguarded_total(calcom) == before


async def test_a_booking_made_behind_the_guards_back_is_recorded_and_counted(
    calcom: Harness,
) -> None:
    before = await unguarded_total(calcom)
    body = webhook("BOOKING_CREATED", "rogueUid1", metadata={"call_id": "call_rogue"})
    response = await post_calcom(calcom, body)
    assert (await response.json())["recorded"] == [
        "CalcomBookingCreatedObserved",
        "UnguardedBookingDetected",
    ]
    assert await unguarded_total(calcom) == before + 1
    data = await calcom.pool.fetchval(
        "SELECT data FROM events WHERE type = 'UnguardedBookingDetected'"
    )
    assert (data["call_id"], data["booking_uid"]) == ("call_rogue", "rogueUid1")

    await post_calcom(calcom, body)
    assert await unguarded_total(calcom) == before + 1
    assert await calcom.event_count() == 2


async def test_a_booking_without_a_call_id_is_only_observed(calcom: Harness) -> None:
    before = await unguarded_total(calcom)
    response = await post_calcom(calcom, webhook("BOOKING_CREATED", "webUid1"))
    assert (await response.json())["recorded"] == ["CalcomBookingCreatedObserved"]
    assert await unguarded_total(calcom) == before


@pytest.mark.parametrize("trigger", ["PING", "MEETING_ENDED", "BOOKING_PAYMENT_INITIATED"])
async def test_other_triggers_are_acknowledged_and_not_recorded(
    calcom: Harness, trigger: str
) -> None:
    response = await post_calcom(calcom, webhook(trigger, "anyUid"))
    assert response.status == 202
    assert (await response.json())["status"] == "ignored"
    assert await calcom.event_count() == 0


async def test_a_reschedule_without_its_origin_is_422(calcom: Harness) -> None:
    response = await post_calcom(calcom, webhook("BOOKING_RESCHEDULED", "newUid"))
    assert response.status == 422
    assert (await response.json())["error"] == "invalid_request"
    assert await calcom.event_count() == 0


@pytest.mark.parametrize(
    ("case", "signature"),
    [
        ("missing", None),
        ("no secret", "no-secret-provided"),
        ("wrong", "0" * 64),
        ("upper case garbage", "Z" * 64),
    ],
)
async def test_a_bad_signature_is_401_and_writes_nothing(
    calcom: Harness, case: str, signature: str | None
) -> None:
    appointment = await booked(calcom)
    before = await calcom.event_count()
    body = webhook("BOOKING_CANCELLED", appointment["booking_uid"])
    response = await post_calcom(calcom, body, signature=signature, sign=signature is not None)
    assert response.status == 401, case
    assert (await response.json())["error"] == "invalid_signature"
    assert await calcom.event_count() == before
    assert (await appointment_row(calcom, appointment["appointment_id"]))["status"] == "booked"


async def test_a_signature_of_another_body_is_401(calcom: Harness) -> None:
    signed = b'{"triggerEvent": "PING"}'
    sent = b'{"triggerEvent": "PING", "createdAt": "2025-10-06T10:00:00Z", "payload": {}}'
    response = await post_calcom(calcom, sent, signature=calcom_signature(signed, CALCOM_SECRET))
    assert response.status == 401


async def test_without_a_secret_the_webhook_is_503(harness: Harness) -> None:
    response = await post_calcom(harness, webhook("BOOKING_CANCELLED", "uid1"))
    assert response.status == 503
    assert (await response.json())["error"] == "webhook_not_configured"


async def test_a_reschedule_onto_a_booking_held_by_another_appointment_is_409(
    calcom: Harness,
) -> None:
    first = await booked(calcom)
    status, answer = await calcom.book(
        attempt_body("call_other", event_type_id=PLAIN, start=NEW_START)
    )
    assert status == 201, answer
    second = answer["appointment"]
    before = await calcom.event_count()
    body = webhook(
        "BOOKING_RESCHEDULED",
        second["booking_uid"],
        rescheduleUid=first["booking_uid"],
        startTime=NEW_START,
    )
    response = await post_calcom(calcom, body)
    assert response.status == 409
    assert (await response.json())["error"] == "reschedule_conflict"
    assert await calcom.event_count() == before
    row = await appointment_row(calcom, first["appointment_id"])
    assert row["booking_uid"] == first["booking_uid"]


async def test_a_cancellation_cal_com_does_not_confirm_changes_nothing(calcom: Harness) -> None:
    appointment = await booked(calcom)
    before = await calcom.event_count()
    # Signed, but Cal.com still holds the booking as accepted: a stale or forged hint.
    response = await post_calcom(calcom, webhook("BOOKING_CANCELLED", appointment["booking_uid"]))
    assert response.status == 200
    assert (await response.json())["recorded"] == []
    assert (await appointment_row(calcom, appointment["appointment_id"]))["status"] == "booked"
    assert await calcom.event_count() == before


async def test_a_change_to_a_booking_cal_com_does_not_know_changes_nothing(
    calcom: Harness,
) -> None:
    response = await post_calcom(calcom, webhook("BOOKING_CANCELLED", "noSuchUid"))
    assert response.status == 200
    assert (await response.json())["status"] == "unknown_booking"
    assert await calcom.event_count() == 0


async def test_a_host_declining_a_pending_booking_declines_the_appointment(
    calcom: Harness,
) -> None:
    status, answer = await calcom.book(attempt_body(event_type_id=CONFIRMATION_EVENT_TYPE_ID))
    assert status == 201 and answer["status"] == "pending_confirmation"
    uid = answer["appointment"]["booking_uid"]
    requested = webhook("BOOKING_REQUESTED", uid, status="PENDING")
    assert (await post_calcom(calcom, requested)).status == 200
    calcom.simulator.ledger.get(uid).status = "rejected"  # the host declines in Cal.com

    body = webhook("BOOKING_REJECTED", uid, status="REJECTED", rejectionReason="on holiday")
    response = await post_calcom(calcom, body)

    assert (await response.json())["recorded"] == ["BookingDeclined"]
    row = await appointment_row(calcom, answer["appointment"]["appointment_id"])
    assert row["status"] == "declined"


async def test_a_host_accepting_a_pending_booking_books_the_appointment(calcom: Harness) -> None:
    status, answer = await calcom.book(attempt_body(event_type_id=CONFIRMATION_EVENT_TYPE_ID))
    assert status == 201
    uid = answer["appointment"]["booking_uid"]
    calcom.simulator.ledger.get(uid).status = "accepted"  # the host accepts in Cal.com
    # Cal.com's BOOKING_CREATED on acceptance carries only {videoCallUrl} as metadata.
    body = webhook("BOOKING_CREATED", uid, status="ACCEPTED", metadata={"videoCallUrl": "x"})

    response = await post_calcom(calcom, body)

    assert "BookingAccepted" in (await response.json())["recorded"]
    row = await appointment_row(calcom, answer["appointment"]["appointment_id"])
    assert row["status"] == "booked"
    replay = await calcom.book(attempt_body(event_type_id=CONFIRMATION_EVENT_TYPE_ID))
    assert replay[1]["status"] == "confirmed"  # the replayed answer is true now
