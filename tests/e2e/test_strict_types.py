"""Types are not coerced: `"1002"`, `true` and `1002.0` are not event type 1002 (or 1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Harness, MakeHarness, attempt_body
from tests.e2e.signed import CALCOM_SECRET, RETELL_KEY, post_calcom, post_retell

COERCIBLE = [("text", "1002"), ("true", True), ("false", False), ("float", 1002.0)]


@pytest.mark.parametrize(("kind", "value"), COERCIBLE, ids=[c[0] for c in COERCIBLE])
async def test_a_booking_event_type_that_is_not_an_integer_is_422(
    harness: Harness, kind: str, value: Any
) -> None:
    status, answer = await harness.book({**attempt_body(), "event_type_id": value})
    assert status == 422, answer
    assert [d["field"] for d in answer["detail"]] == ["event_type_id"]
    assert await harness.event_count() == 0
    assert len(harness.simulator.requests) == 0


@pytest.fixture
async def signed(make_harness: MakeHarness) -> Harness:
    return await make_harness(retell_api_key=RETELL_KEY, calcom_webhook_secret=CALCOM_SECRET)


@pytest.mark.parametrize(("kind", "value"), COERCIBLE, ids=[c[0] for c in COERCIBLE])
async def test_a_retell_event_type_that_is_not_an_integer_is_invalid(
    signed: Harness, kind: str, value: Any
) -> None:
    body = {
        "name": "book_appointment",
        "call": {"call_id": "call_strict", "agent_id": "agent_1"},
        "args": {
            "start": "2025-10-10T08:00:00",
            "time_zone": "Europe/Berlin",
            "event_type_id": value,
            "name": "Hansi Sputer",
            "email": "hansi@example.com",
        },
    }
    answer = await (await post_retell(signed, body)).json()
    assert answer["result"] == "invalid", answer
    assert answer["invalid_args"] == ["event_type_id"]
    assert await signed.event_count() == 0
    assert len(signed.simulator.requests) == 0


@pytest.mark.parametrize("field", ["bookingId", "eventTypeId"])
async def test_a_calcom_webhook_id_that_is_a_boolean_is_422(signed: Harness, field: str) -> None:
    body = {
        "triggerEvent": "BOOKING_CREATED",
        "createdAt": "2025-10-06T10:00:00Z",
        "payload": {"uid": "u1", "startTime": "2025-10-10T06:00:00Z", field: True},
    }
    response = await post_calcom(signed, body)
    assert response.status == 422
    assert f"payload.{field}" in [d["field"] for d in (await response.json())["detail"]]
    assert await signed.event_count() == 0


async def test_a_calcom_webhook_id_as_digits_is_still_read(signed: Harness) -> None:
    # Cal.com sends what it sends: a numeric string is the same number, and refusing the webhook
    # would lose the booking's news; only coercions that change meaning (true → 1) are refused.
    body = {
        "triggerEvent": "BOOKING_CREATED",
        "createdAt": "2025-10-06T10:00:00Z",
        "payload": {"uid": "u1", "startTime": "2025-10-10T06:00:00Z", "bookingId": "42"},
    }
    response = await post_calcom(signed, body)
    assert response.status < 300
    data = await signed.pool.fetchval("SELECT data FROM events")
    assert data["booking_id"] == 42
