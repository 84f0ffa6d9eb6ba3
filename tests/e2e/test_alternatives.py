"""Offer another time: a refusal names free slots nearby; /v1/slots and Retell's
check_availability list free times, all from Cal.com's /v2/slots."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    CALL_687,
    CALL_688,
    PLAIN,
    RETURNS_EXISTING,
    Harness,
    MakeHarness,
    attempt_body,
)
from tests.e2e.signed import RETELL_KEY, post_retell

FRIDAY_10 = "2025-10-10T10:00:00Z"  # 12:00 in Berlin; the simulator's hosts work 09-17 UTC


def at(start: str, call_id: str, email: str) -> dict[str, Any]:
    return attempt_body(call_id, email=email, event_type_id=PLAIN, start=start)


async def test_a_taken_slot_offers_the_three_nearest_free_ones_earlier_first(
    harness: Harness,
) -> None:
    status, _ = await harness.book(at(FRIDAY_10, CALL_687, "a@example.com"))
    assert status == 201
    status, body = await harness.book(at(FRIDAY_10, CALL_688, "b@example.com"))
    assert status == 409, body
    assert body["reason"] == "slot_unavailable"
    assert body["alternatives"] == [
        {"start": "2025-10-10T09:30:00Z"},  # 30 min before: ties with 10:30, earlier first
        {"start": "2025-10-10T10:30:00Z"},
        {"start": "2025-10-10T09:00:00Z"},
    ]
    slot_queries = [r for r in harness.simulator.requests if r.path == "/v2/slots"]
    assert slot_queries and slot_queries[0].headers["cal-api-version"] == "2024-09-04"


async def test_a_replay_offers_what_is_free_now(harness: Harness) -> None:
    await harness.book(at(FRIDAY_10, CALL_687, "a@example.com"))
    refused = at(FRIDAY_10, CALL_688, "b@example.com")
    status, first = await harness.book(refused, **{"Idempotency-Key": "k-alt"})
    assert status == 409
    await harness.book(at("2025-10-10T09:30:00Z", "call_other", "c@example.com"))
    status, again = await harness.book(refused, **{"Idempotency-Key": "k-alt"})
    assert status == 409
    assert {"start": "2025-10-10T09:30:00Z"} in first["alternatives"]
    assert again["alternatives"] == [
        {"start": "2025-10-10T10:30:00Z"},
        {"start": "2025-10-10T09:00:00Z"},
        {"start": "2025-10-10T11:00:00Z"},
    ]
    stored = await harness.pool.fetchval("SELECT response_body::text FROM idempotency_keys")
    assert "alternatives" not in stored


async def test_a_guard_refusal_offers_alternatives_too(harness: Harness) -> None:
    await harness.book(attempt_body(CALL_687, event_type_id=RETURNS_EXISTING, start=FRIDAY_10))
    status, body = await harness.book(
        attempt_body(
            CALL_688, name="Hans Schuster", event_type_id=RETURNS_EXISTING, start=FRIDAY_10
        )
    )
    assert status == 409 and body["guard"] == "call_identity", body
    assert [a["start"] for a in body["alternatives"]] == [
        "2025-10-10T09:30:00Z",
        "2025-10-10T10:30:00Z",
        "2025-10-10T09:00:00Z",
    ]


async def test_alternatives_are_empty_when_calcom_cannot_say(harness: Harness) -> None:
    await harness.book(at(FRIDAY_10, CALL_687, "a@example.com"))
    harness.simulator.add_faults("500@slots", "500@slots", "500@slots")
    status, body = await harness.book(at(FRIDAY_10, CALL_688, "b@example.com"))
    assert status == 409 and body["alternatives"] == [], body


async def test_slots_lists_free_starts_sorted_and_bounds_the_range(harness: Harness) -> None:
    await harness.book(at(FRIDAY_10, CALL_687, "a@example.com"))
    response = await harness.client.get(
        "/v1/slots",
        params={
            "event_type_id": PLAIN,
            "from": "2025-10-10T09:00:00Z",
            "to": "2025-10-10T11:00:00Z",
        },
    )
    assert response.status == 200
    assert await response.json() == {
        "slots": [
            {"start": "2025-10-10T09:00:00Z"},
            {"start": "2025-10-10T09:30:00Z"},
            {"start": "2025-10-10T10:30:00Z"},
            {"start": "2025-10-10T11:00:00Z"},
        ]
    }
    too_long = await harness.client.get(
        "/v1/slots",
        params={
            "event_type_id": PLAIN,
            "from": "2025-10-10T00:00:00Z",
            "to": "2025-11-11T00:00:00Z",
        },
    )
    assert too_long.status == 422
    assert (await too_long.json())["error"] == "invalid_query"
    unknown = await harness.client.get(
        "/v1/slots",
        params={"event_type_id": 999, "from": "2025-10-10T00:00:00Z", "to": "2025-10-11T00:00:00Z"},
    )
    assert unknown.status == 422
    assert (await unknown.json())["detail"][0]["field"] == "event_type_id"


def retell_call(function: str, **args: Any) -> dict[str, Any]:
    return {
        "name": function,
        "call": {"call_id": CALL_688, "agent_id": "agent_1"},
        "args": {"event_type_id": PLAIN, "time_zone": "Europe/Berlin", **args},
    }


async def test_retell_names_free_times_in_the_callers_local_time(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(retell_api_key=RETELL_KEY)
    await harness.book(at(FRIDAY_10, CALL_687, "a@example.com"))
    call = retell_call(
        "book_appointment", start="2025-10-10T12:00:00", name="Hans", email="h@example.com"
    )
    answer = await (await post_retell(harness, call)).json()
    assert answer["result"] == "slot_taken"
    assert answer["message"] == (
        "That time is not available. Please offer the caller another time: "
        "11:30, 12:30 or 11:00 are free."
    )
    assert answer["alternatives"][0] == {"start": "2025-10-10T11:30:00+02:00"}


async def test_retell_check_availability_names_up_to_five_free_times(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(retell_api_key=RETELL_KEY)
    await harness.book(at(FRIDAY_10, CALL_687, "a@example.com"))
    answer = await (
        await post_retell(harness, retell_call("check_availability", day="2025-10-10"))
    ).json()
    assert answer["result"] == "available", answer
    assert answer["message"] == "On Friday 10 October 11:00, 11:30, 12:30, 13:00 or 13:30 are free."
    assert len(answer["slots"]) == 15  # 16 half hours from 09:00 to 17:00 UTC, one taken
    weekend = await (
        await post_retell(harness, retell_call("check_availability", day="2025-10-11"))
    ).json()
    assert weekend["result"] == "none" and weekend["slots"] == []
    invalid = await (await post_retell(harness, retell_call("check_availability"))).json()
    assert invalid["result"] == "invalid"
