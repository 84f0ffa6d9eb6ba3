"""Cal.com misbehaving: what is retried, what fails, and what the producer is told."""

from __future__ import annotations

import re

from tests.e2e.conftest import Harness, MakeHarness, attempt_body


def creates(harness: Harness) -> int:
    return sum(
        1 for r in harness.simulator.requests if r.method == "POST" and r.path == "/v2/bookings"
    )


async def test_a_500_then_success_is_retried_and_confirmed(harness: Harness) -> None:
    harness.simulator.add_faults("500@create")
    status, body = await harness.book(attempt_body())
    assert status == 201, body
    assert creates(harness) == 2


async def test_a_429_is_retried_after_its_retry_after(harness: Harness) -> None:
    harness.simulator.add_faults("429:0@create")
    status, body = await harness.book(attempt_body())
    assert status == 201, body
    assert creates(harness) == 2


async def test_a_400_is_not_retried_and_fails_for_good(harness: Harness) -> None:
    status, body = await harness.book(attempt_body(event_type_id=999_999))
    assert status == 422, body
    assert body["status"] == "failed"
    assert body["error"] == body["reason"] == "calcom_rejected_request"
    assert body["retryable"] is False
    assert body["detail"]["calcom_status"] == 404
    assert creates(harness) == 1
    assert await harness.event_types() == ["BookingRequested", "BookingFailed"]


async def test_a_timeout_ends_as_a_retryable_failure(make_harness: MakeHarness) -> None:
    harness = await make_harness(max_attempts=2, total_timeout=0.2)
    harness.simulator.add_faults("timeout@create", "timeout@create")
    status, body = await harness.book(attempt_body())
    assert status == 504, body
    assert body == {
        "attempt_id": body["attempt_id"],
        "status": "failed",
        "reason": "calcom_timeout",
        "retryable": True,
        "detail": {"calcom_status": None, "calcom_message": body["detail"]["calcom_message"]},
    }
    assert await harness.event_types() == ["BookingRequested", "BookingFailed"]
    assert await harness.appointment_count() == 0


async def test_exhausted_5xx_is_a_502(make_harness: MakeHarness) -> None:
    harness = await make_harness(max_attempts=2)
    harness.simulator.add_faults("503@create", "503@create")
    status, body = await harness.book(attempt_body())
    assert status == 502, body
    assert body["reason"] == "calcom_unavailable"
    # A later retry with the same key opens a new attempt rather than replaying the 502.
    status, body = await harness.book(attempt_body())
    assert status == 201, body


async def test_a_dropped_connection_is_a_5xx_in_plain_words(make_harness: MakeHarness) -> None:
    harness = await make_harness(max_attempts=2)
    harness.simulator.add_faults("drop@create", "drop@create")
    status, body = await harness.book(attempt_body())
    assert status >= 500, body
    message = body["detail"]["calcom_message"]
    assert message.startswith("connection to Cal.com failed: "), body
    # No aiohttp class names or reprs: the producer and its logs get words.
    assert not re.search(r"[A-Z][a-z]+[A-Z]\w*|\(|'", message), message
