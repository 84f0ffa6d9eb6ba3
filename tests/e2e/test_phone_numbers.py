"""Phone numbers as Cal.com checks them: refused at our edge, sent in E.164, or left out."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import CALL_687, PLAIN, Harness, MakeHarness, attempt_body
from tests.e2e.signed import RETELL_KEY, post_retell

NO_SUCH_NUMBER = "+266696687"  # the shape of a number, valid nowhere (Lesotho has 8 digits)


def with_phone(phone: str, **kwargs: Any) -> dict[str, Any]:
    body = attempt_body(event_type_id=PLAIN, **kwargs)
    body["attendee"]["phone_number"] = phone
    return body


def created_bodies(harness: Harness) -> list[Any]:
    return [
        r.body
        for r in harness.simulator.requests
        if r.method == "POST" and r.path == "/v2/bookings"
    ]


async def test_an_invalid_number_is_a_422_naming_the_field_and_writes_nothing(
    harness: Harness,
) -> None:
    status, body = await harness.book(with_phone(NO_SUCH_NUMBER))
    assert status == 422, body
    assert [d["field"] for d in body["detail"]] == ["attendee.phone_number"]
    assert await harness.event_count() == 0
    assert created_bodies(harness) == []


async def test_a_valid_number_in_any_spelling_is_sent_in_e164(harness: Harness) -> None:
    status, body = await harness.book(with_phone("+49 30 1234567"))
    assert status == 201, body
    (sent,) = created_bodies(harness)
    assert sent["attendee"]["phoneNumber"] == "+49301234567"


async def test_the_simulator_refuses_an_invalid_number_like_calcom(harness: Harness) -> None:
    body = {
        "start": "2025-10-10T06:00:00.000Z",
        "eventTypeId": PLAIN,
        "attendee": {"name": "Hans", "timeZone": "Europe/Berlin", "phoneNumber": NO_SUCH_NUMBER},
    }
    response = await harness.client.session.post(
        f"{harness.simulator_url}/v2/bookings",
        json=body,
        headers={"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test"},
    )
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["message"] == "attendee.phoneNumber must be a valid phone number"


async def test_retell_leaves_an_invalid_caller_id_out_and_books_by_email(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(retell_api_key=RETELL_KEY, fallback_email="termin@example.com")
    call = {
        "name": "book_appointment",
        "call": {"call_id": CALL_687, "agent_id": "agent_1", "from_number": NO_SUCH_NUMBER},
        "args": {
            "start": "2025-10-10T08:00:00",
            "time_zone": "Europe/Berlin",
            "event_type_id": PLAIN,
            "name": "Hansi Sputer",
        },
    }
    answer = await (await post_retell(harness, call)).json()
    assert answer["result"] == "confirmed", answer
    (sent,) = created_bodies(harness)
    assert "phoneNumber" not in sent["attendee"]
    assert sent["attendee"]["email"] == f"termin+{CALL_687}@example.com"
    data = await harness.pool.fetchval("SELECT data FROM events WHERE type = 'BookingRequested'")
    assert data["attendee"].get("phone_number") is None
    assert data["metadata"]["caller_id_note"] == "caller id is not a valid phone number; left out"
