"""Bad input: a clear 4xx naming the problem, nothing written, the service still serving."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Harness, attempt_body


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    copy: dict[str, Any] = {**body, "attendee": dict(body["attendee"])}
    target = copy
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return copy


def with_value(body: dict[str, Any], value: object, *path: str) -> dict[str, Any]:
    copy: dict[str, Any] = {**body, "attendee": dict(body["attendee"])}
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


GOOD = attempt_body()

CASES = [
    ("missing call_id", without(GOOD, "call_id"), "call_id"),
    ("missing start", without(GOOD, "start"), "start"),
    ("missing attendee name", without(GOOD, "attendee", "name"), "attendee.name"),
    ("event type as text", with_value(GOOD, "one", "event_type_id"), "event_type_id"),
    ("negative event type", with_value(GOOD, -5, "event_type_id"), "event_type_id"),
    ("start not a time", with_value(GOOD, "next tuesday", "start"), "start"),
    ("start without offset", with_value(GOOD, "2025-10-10T08:00:00", "start"), "start"),
    (
        "unknown time zone",
        with_value(GOOD, "Mars/Olympus", "attendee", "time_zone"),
        "attendee.time_zone",
    ),
    ("bad e-mail", with_value(GOOD, "not-an-address", "attendee", "email"), "attendee.email"),
    ("unknown field", with_value(GOOD, True, "surprise"), "surprise"),
    ("metadata not strings", with_value(GOOD, {"n": 1}, "metadata"), "metadata.n"),
    ("reserved metadata", with_value(GOOD, {"call_id": "x"}, "metadata"), "metadata"),
    ("start in the past", with_value(GOOD, "2025-10-01T08:00:00Z", "start"), "start"),
    ("start absurdly far", with_value(GOOD, "9999-01-01T08:00:00Z", "start"), "start"),
    ("no e-mail and no fallback", without(GOOD, "attendee", "email"), "attendee.email"),
]


@pytest.mark.parametrize(("name", "body", "field"), CASES, ids=[c[0] for c in CASES])
async def test_invalid_body_is_422_naming_the_field(
    harness: Harness, name: str, body: dict[str, Any], field: str
) -> None:
    status, answer = await harness.book(body)
    assert status == 422, answer
    assert answer["error"] == "invalid_request"
    assert field in [d["field"] for d in answer["detail"]], answer
    assert await harness.event_count() == 0
    assert harness.simulator.requests == type(harness.simulator.requests)()


async def test_body_that_is_not_json_is_400(harness: Harness) -> None:
    response = await harness.client.post(
        "/v1/booking-attempts", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"] == "bad_request"
    assert await harness.event_count() == 0


async def test_body_that_is_not_utf8_is_400(harness: Harness) -> None:
    response = await harness.client.post(
        "/v1/booking-attempts",
        data=b'{"call_id": "\xff\xfe"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    assert await harness.event_count() == 0


async def test_a_json_array_is_422(harness: Harness) -> None:
    response = await harness.client.post("/v1/booking-attempts", json=[1, 2])
    assert response.status == 422
    assert await harness.event_count() == 0


async def test_wrong_content_type_is_415(harness: Harness) -> None:
    response = await harness.client.post("/v1/booking-attempts", data="call_id=1")
    assert response.status == 415
    assert (await response.json())["error"] == "unsupported_media_type"


async def test_too_large_body_is_413(harness: Harness) -> None:
    body = with_value(GOOD, {"note": "x" * 100_000}, "metadata")
    status, answer = await harness.book(body)
    assert status == 413
    assert answer["error"] == "request_too_large"
    assert await harness.event_count() == 0


async def test_overlong_idempotency_key_is_400(harness: Harness) -> None:
    status, answer = await harness.book(GOOD, **{"Idempotency-Key": "k" * 300})
    assert status == 400
    assert answer["error"] == "invalid_idempotency_key"


async def test_unknown_attempt_and_appointment_are_404(harness: Harness) -> None:
    for path in (
        "/v1/booking-attempts/00000000-0000-0000-0000-000000000000",
        "/v1/booking-attempts/not-a-uuid",
        "/v1/appointments/00000000-0000-0000-0000-000000000000",
    ):
        response = await harness.client.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"] == "not_found"


async def test_the_service_keeps_serving_after_bad_input(harness: Harness) -> None:
    for _, body, _ in CASES:
        await harness.book(body)
    status, answer = await harness.book(GOOD)
    assert status == 201, answer
