"""Retell: the booking function call answers a sentence for the agent; lifecycle webhooks land
on the call's stream exactly once; anything not signed with the API key is refused, writing
nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from tests.e2e.conftest import CALL_687, CALL_688, INCIDENT_SLOT, PLAIN, Harness, MakeHarness
from tests.e2e.signed import RETELL_KEY, now_ms, post_retell, retell_sign


@pytest.fixture
async def retell(make_harness: MakeHarness) -> Harness:
    return await make_harness(retell_api_key=RETELL_KEY)


def function_call(call_id: str = CALL_687, **args: Any) -> dict[str, Any]:
    arguments = {
        "start": "2025-10-10T08:00:00",
        "time_zone": "Europe/Berlin",
        "event_type_id": PLAIN,
        "name": "Hansi Sputer",
        "email": "hansi@example.com",
        **args,
    }
    return {
        "name": "book_appointment",
        "call": {"call_id": call_id, "agent_id": "agent_1", "from_number": "+4930123456"},
        "args": {k: v for k, v in arguments.items() if v is not None},
    }


def lifecycle(event: str, call_id: str = CALL_687, **call: Any) -> dict[str, Any]:
    return {"event": event, "call": {"call_id": call_id, "agent_id": "agent_1", **call}}


def creates(harness: Harness) -> int:
    return sum(1 for r in harness.simulator.requests if r.method == "POST")


async def test_a_function_call_books_and_says_when(retell: Harness) -> None:
    response = await post_retell(retell, function_call())
    assert response.status == 200
    answer = await response.json()
    assert answer["result"] == "confirmed"
    assert answer["message"] == "Booked for Friday 10 October at 08:00."
    assert await retell.appointment_count() == 1
    data = await retell.pool.fetchval("SELECT data FROM events WHERE type = 'BookingRequested'")
    # The local time the LLM said, read in the caller's zone; the caller's number from the call.
    assert datetime.fromisoformat(data["start"]) == datetime.fromisoformat(INCIDENT_SLOT)
    assert data["attendee"]["phone_number"] == "+4930123456"
    assert data["metadata"] == {"source": "retell", "retell_agent_id": "agent_1"}


async def test_retells_retry_of_a_function_call_books_once(retell: Harness) -> None:
    first = await (await post_retell(retell, function_call())).json()
    again = await (await post_retell(retell, function_call())).json()
    assert first == again
    assert creates(retell) == 1
    assert await retell.appointment_count() == 1


async def test_a_taken_slot_asks_for_another_time(retell: Harness) -> None:
    await post_retell(retell, function_call(CALL_687))
    response = await post_retell(retell, function_call(CALL_688, name="Hans Schuster"))
    answer = await response.json()
    assert response.status == 200
    assert answer["result"] == "slot_taken"
    assert "another time" in answer["message"]
    assert await retell.appointment_count() == 1


async def test_an_unanswering_calendar_asks_to_try_again(retell: Harness) -> None:
    retell.simulator.add_faults("503@create", "503@create", "503@create")
    answer = await (await post_retell(retell, function_call())).json()
    assert answer["result"] == "try_again"


async def test_invalid_arguments_name_the_argument_and_write_nothing(retell: Harness) -> None:
    response = await post_retell(
        retell, function_call(start=INCIDENT_SLOT, time_zone="Mars/Olympus", email="nope")
    )
    answer = await response.json()
    assert response.status == 200
    assert answer["result"] == "invalid"
    assert answer["invalid_args"] == ["email", "time_zone"]
    assert await retell.event_count() == 0


async def test_a_start_in_the_past_is_said_plainly(retell: Harness) -> None:
    answer = await (await post_retell(retell, function_call(start="2025-10-01T08:00:00"))).json()
    assert answer["result"] == "invalid"
    assert answer["invalid_args"] == ["start"]
    assert "in the past" in answer["message"]
    assert await retell.event_count() == 0


async def test_an_unknown_function_is_422(retell: Harness) -> None:
    response = await post_retell(retell, {**function_call(), "name": "transfer_call"})
    assert response.status == 422
    assert (await response.json())["error"] == "unknown_function"
    assert await retell.event_count() == 0


async def test_lifecycle_webhooks_join_the_calls_timeline_once(retell: Harness) -> None:
    await post_retell(retell, function_call())
    deliveries = [
        lifecycle("call_started", call_status="ongoing", start_timestamp=1759741467000),
        lifecycle("call_ended", disconnection_reason="user_hangup", transcript="x" * 200_000),
        lifecycle("call_analyzed", call_analysis={"call_successful": True}),
    ]
    for body in deliveries:
        response = await post_retell(retell, body)
        assert response.status == 204
    before = await retell.event_count()
    for body in deliveries:  # Retell retries a webhook it thinks failed
        assert (await post_retell(retell, body)).status == 204
    assert await retell.event_count() == before
    rows = await retell.pool.fetch(
        "SELECT stream_id, type, data FROM events WHERE data->>'call_id' = $1 ORDER BY position",
        CALL_687,
    )
    timeline = [row["type"] for row in rows]
    assert timeline[-3:] == ["RetellCallStarted", "RetellCallEnded", "RetellCallAnalyzed"]
    assert {row["stream_id"] for row in rows[-3:]} == {f"call-{CALL_687}"}
    assert "transcript" not in rows[-2]["data"]
    assert rows[-1]["data"]["call_analysis"] == {"call_successful": True}


async def test_an_unknown_lifecycle_event_is_acknowledged_and_not_kept(retell: Harness) -> None:
    response = await post_retell(retell, lifecycle("transcript_updated"))
    assert response.status == 204
    assert await retell.event_count() == 0


def _signatures(body: bytes, now: int) -> dict[str, str | None]:
    return {
        "missing": None,
        "malformed": "sha256=abc",
        "expired": retell_sign(body, timestamp_ms=now - 6 * 60 * 1000),
        "from the future": retell_sign(body, timestamp_ms=now + 6 * 60 * 1000),
        "wrong key": retell_sign(body, timestamp_ms=now, key="key_somebody_else"),
        "other body": retell_sign(body + b" ", timestamp_ms=now),
    }


@pytest.mark.parametrize(
    "case", ["missing", "malformed", "expired", "from the future", "wrong key", "other body"]
)
@pytest.mark.parametrize(
    "body", [function_call(), lifecycle("call_started")], ids=["call", "event"]
)
async def test_a_bad_signature_is_401_and_writes_nothing(
    retell: Harness, case: str, body: dict[str, Any]
) -> None:
    signature = _signatures(orjson.dumps(body), now_ms(retell))[case]
    response = await post_retell(retell, body, signature=signature, sign=signature is not None)
    assert response.status == 401
    assert (await response.json())["error"] == "invalid_signature"
    assert await retell.event_count() == 0
    assert creates(retell) == 0


async def test_without_retell_api_key_the_webhook_is_503(harness: Harness) -> None:
    response = await post_retell(harness, lifecycle("call_started"))
    assert response.status == 503
    assert (await response.json())["error"] == "webhook_not_configured"
    assert await harness.event_count() == 0


async def test_a_signed_body_that_is_neither_kind_is_422(retell: Harness) -> None:
    response = await post_retell(retell, {"hello": "world"})
    assert response.status == 422
    assert await retell.event_count() == 0


async def test_the_slot_in_utc_works_as_well(retell: Harness) -> None:
    answer = await (await post_retell(retell, function_call(start=INCIDENT_SLOT))).json()
    assert answer["result"] == "confirmed"
