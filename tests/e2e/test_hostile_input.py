"""Hostile input beyond tests/e2e/test_bad_input.py: deep nesting, huge strings, NUL characters,
oversized webhooks. Each gets its 4xx with a JSON error, and nothing is written."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.e2e.conftest import PLAIN, Harness, MakeHarness, attempt_body
from tests.e2e.signed import CALCOM_SECRET, RETELL_KEY, post_calcom, post_retell

GOOD = attempt_body()


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"n": value}
    return value


async def post_raw(harness: Harness, raw: bytes) -> tuple[int, dict[str, Any]]:
    response = await harness.client.post(
        "/v1/booking-attempts", data=raw, headers={"Content-Type": "application/json"}
    )
    body: dict[str, Any] = await response.json()
    return response.status, body


@pytest.mark.parametrize("depth", [40, 500, 5000])
async def test_deeply_nested_json_is_400(harness: Harness, depth: int) -> None:
    raw = b'{"call_id": "c", "metadata": ' + b'{"n": ' * depth + b"1" + b"}" * depth + b"}"
    status, body = await post_raw(harness, raw)
    assert status in (400, 413), body
    assert body["error"] in ("bad_request", "request_too_large")
    assert await harness.event_count() == 0


async def test_nesting_deeper_than_the_limit_says_so(harness: Harness) -> None:
    status, body = await harness.book({**GOOD, "metadata": nested(40)})
    assert status == 400
    assert "deeper than 32 levels" in body["detail"]
    assert await harness.event_count() == 0


def replaced(value: Any, *path: str) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(orjson.dumps(GOOD))
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


HUGE = "x" * 20_000
STRINGS = [
    ("call_id", replaced(HUGE, "call_id"), "call_id"),
    ("name", replaced(HUGE, "attendee", "name"), "attendee.name"),
    ("email", replaced(HUGE + "@example.com", "attendee", "email"), "attendee.email"),
    ("time zone", replaced(HUGE, "attendee", "time_zone"), "attendee.time_zone"),
    ("phone", replaced("+49" + "1" * 20_000, "attendee", "phone_number"), "attendee.phone_number"),
    ("start", replaced("2025-10-10T06:00:00" + "0" * 20_000 + "Z", "start"), "start"),
    ("metadata value", replaced({"note": "y" * 501}, "metadata"), "metadata"),
    ("metadata key", replaced({"k" * 41: "v"}, "metadata"), "metadata"),
    ("metadata keys", replaced({f"k{i}": "v" for i in range(49)}, "metadata"), "metadata"),
    ("event type", replaced(10**30, "event_type_id"), "event_type_id"),
]


@pytest.mark.parametrize(("name", "body", "field"), STRINGS, ids=[s[0] for s in STRINGS])
async def test_huge_values_are_422_naming_the_field(
    harness: Harness, name: str, body: dict[str, Any], field: str
) -> None:
    status, answer = await harness.book(body)
    assert status == 422, answer
    assert any(d["field"].startswith(field) for d in answer["detail"]), answer
    assert await harness.event_count() == 0
    assert len(harness.simulator.requests) == 0


@pytest.mark.parametrize("where", ["name", "metadata"])
async def test_a_nul_character_is_400_not_a_database_error(harness: Harness, where: str) -> None:
    body = (
        replaced("Hans\u0000Schuster", "attendee", "name")
        if where == "name"
        else replaced({"note": "a\u0000b"}, "metadata")
    )
    status, answer = await harness.book(body)
    assert status == 400, answer
    assert "NUL" in answer["detail"]
    assert await harness.event_count() == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"null", b"42", b'"text"', b"[]", b"{}", b'{"call_id": "\\ud800"}', b"\xef\xbb\xbf{}"],
    ids=["empty", "null", "number", "string", "array", "object", "lone surrogate", "BOM"],
)
async def test_odd_json_is_a_4xx_and_writes_nothing(harness: Harness, raw: bytes) -> None:
    status, answer = await post_raw(harness, raw)
    assert status in (400, 422), answer
    assert "error" in answer
    assert await harness.event_count() == 0


@pytest.fixture
async def webhooks(make_harness: MakeHarness) -> Harness:
    return await make_harness(retell_api_key=RETELL_KEY, calcom_webhook_secret=CALCOM_SECRET)


async def test_a_webhook_over_a_mebibyte_is_413(webhooks: Harness) -> None:
    body = {"event": "call_ended", "call": {"call_id": "c1", "transcript": "x" * (1 << 20)}}
    response = await post_retell(webhooks, body)
    assert response.status == 413
    assert (await response.json())["error"] == "request_too_large"
    assert await webhooks.event_count() == 0


async def test_a_signed_but_deeply_nested_webhook_is_400(webhooks: Harness) -> None:
    body = {"triggerEvent": "BOOKING_CREATED", "createdAt": "2025-10-06T10:00:00Z"}
    response = await post_calcom(webhooks, {**body, "payload": nested(40)})
    assert response.status == 400
    assert await webhooks.event_count() == 0


async def test_a_signed_webhook_with_a_hostile_uid_is_422(webhooks: Harness) -> None:
    body = {
        "triggerEvent": "BOOKING_CANCELLED",
        "createdAt": "2025-10-06T10:00:00Z",
        "payload": {"uid": "../../x" + "y" * 500, "startTime": "2025-10-10T06:00:00Z"},
    }
    response = await post_calcom(webhooks, body)
    assert response.status == 422
    assert await webhooks.event_count() == 0


async def test_a_long_cancellation_reason_is_cut_not_refused(webhooks: Harness) -> None:
    status, answer = await webhooks.book(attempt_body(event_type_id=PLAIN))
    assert status == 201
    uid = answer["appointment"]["booking_uid"]
    webhooks.simulator.ledger.cancel(uid, reason="x", now=webhooks.clock.now())
    body = {
        "triggerEvent": "BOOKING_CANCELLED",
        "createdAt": "2025-10-06T10:00:00Z",
        "payload": {"uid": uid, "startTime": "2025-10-10T06:00:00Z", "cancellationReason": HUGE},
    }
    response = await post_calcom(webhooks, body)
    assert response.status == 200
    data = await webhooks.pool.fetchval("SELECT data FROM events WHERE type = 'BookingCancelled'")
    assert len(data["reason"]) == 500
