"""Everything a booking can carry to Cal.com: custom field answers, length, language, guests,
location; from producers, and from Retell through the agent's configuration."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import orjson

from service.booking.models import BookingRequest
from service.calcom.simulator.event_types import INTAKE_EVENT_TYPE_ID
from tests.e2e.conftest import CALL_687, PLAIN, Harness, MakeHarness, attempt_body
from tests.e2e.signed import RETELL_KEY, post_retell


def created(harness: Harness) -> list[Any]:
    return [r.body for r in harness.simulator.requests if r.method == "POST"]


def intake(**extra: Any) -> dict[str, Any]:
    body = attempt_body(event_type_id=INTAKE_EVENT_TYPE_ID, start="2025-10-10T10:00:00Z")
    return {**body, **extra}


async def test_a_producer_sends_every_option_and_calcom_gets_them(harness: Harness) -> None:
    body = intake(
        booking_fields={"reason": "Knee pain", "returning": True},
        length_in_minutes=45,
        guests=["partner@example.com"],
        location="Praxis, Hauptstraße 1",
    )
    body["attendee"]["language"] = "de"
    status, answer = await harness.book(body)
    assert status == 201, answer
    (sent,) = created(harness)
    assert sent["bookingFieldsResponses"] == {"reason": "Knee pain", "returning": True}
    assert sent["lengthInMinutes"] == 45
    assert sent["guests"] == ["partner@example.com"]
    assert sent["location"] == "Praxis, Hauptstraße 1"
    assert sent["attendee"]["language"] == "de"
    (booking,) = harness.simulator.ledger.bookings.values()
    assert booking.end - booking.start == timedelta(minutes=45)
    requested = await harness.pool.fetchval(
        "SELECT data FROM events WHERE type = 'BookingRequested'"
    )
    assert requested["options"]["booking_fields"]["reason"] == "Knee pain"


async def test_a_missing_required_field_is_a_422_naming_it_before_anything_is_booked(
    harness: Harness,
) -> None:
    status, answer = await harness.book(intake())
    assert status == 422, answer
    assert [d["field"] for d in answer["detail"]] == ["booking_fields.reason"]
    assert await harness.event_count() == 0
    assert created(harness) == []


async def test_the_simulator_refuses_a_create_missing_a_required_field(harness: Harness) -> None:
    response = await harness.client.session.post(
        f"{harness.simulator_url}/v2/bookings",
        json={
            "start": "2025-10-10T10:00:00.000Z",
            "eventTypeId": INTAKE_EVENT_TYPE_ID,
            "attendee": {"name": "Hans", "timeZone": "Europe/Berlin", "email": "h@example.com"},
        },
        headers={"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test"},
    )
    assert response.status == 400
    assert "bookingFieldsResponses.reason" in (await response.json())["error"]["message"]


def test_options_leave_the_fingerprint_of_a_request_without_them_as_it_was() -> None:
    # A key stored before the options existed must still match its producer's retry: the
    # digest of the body as the model dumped it then.
    request = BookingRequest.model_validate(attempt_body())
    before = {
        "call_id": request.call_id,
        "event_type_id": request.event_type_id,
        "start": "2025-10-10T06:00:00Z",
        "attendee": {
            "name": "Hansi Sputer",
            "email": "termin@example.com",
            "time_zone": "Europe/Berlin",
            "phone_number": None,
        },
        "metadata": {},
    }
    digest = hashlib.sha256(orjson.dumps(before, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert request.legacy_fingerprint() == digest
    assert request.matches_fingerprint(digest)


async def test_retell_carries_what_the_agents_configuration_sets(
    make_harness: MakeHarness,
) -> None:
    agents = {
        "agent_1": {
            "Intake": {
                "event_type_id": INTAKE_EVENT_TYPE_ID,
                "length_in_minutes": 60,
                "location": "Praxis",
                "language": "de",
            },
            "Beratung": PLAIN,
        }
    }
    harness = await make_harness(
        retell_api_key=RETELL_KEY, settings_overrides={"retell_agents": agents}
    )
    call = {
        "name": "book_appointment",
        "call": {"call_id": CALL_687, "agent_id": "agent_1"},
        "args": {
            "service": "Intake",
            "start": "2025-10-10T12:00:00",
            "time_zone": "Europe/Berlin",
            "name": "Hansi Sputer",
            "email": "hansi@example.com",
            "booking_fields": {"reason": "Back pain"},
            "location": "the LLM's idea",  # only the configuration sets a location
        },
    }
    answer = await (await post_retell(harness, call)).json()
    assert answer["result"] == "confirmed", answer
    (sent,) = created(harness)
    assert sent["lengthInMinutes"] == 60
    assert sent["location"] == "Praxis"
    assert sent["attendee"]["language"] == "de"
    assert sent["bookingFieldsResponses"] == {"reason": "Back pain"}
