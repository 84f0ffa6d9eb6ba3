"""`Prefer: respond-async`: 202 with a Location to poll, the booking finishes in the background."""

from __future__ import annotations

from typing import Any

from service.api.keys import BACKGROUND_ATTEMPTS
from tests.conftest import wait_until
from tests.e2e.conftest import Harness, MakeHarness, attempt_body

ASYNC = {"Prefer": "respond-async"}


async def submit(harness: Harness, body: dict[str, Any], **headers: str) -> Any:
    return await harness.client.post(
        "/v1/booking-attempts", json=body, headers={**ASYNC, **headers}
    )


async def poll(harness: Harness, location: str) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        answer: dict[str, Any] = await (await harness.client.get(location)).json()
        return None if answer["status"] == "pending" else answer

    outcome = await wait_until(finished)
    assert outcome is not None
    return outcome


async def test_respond_async_answers_202_and_books_in_the_background(harness: Harness) -> None:
    harness.simulator.add_faults("delay:200@create")
    response = await submit(harness, attempt_body())
    assert response.status == 202
    assert response.headers["Preference-Applied"] == "respond-async"
    accepted = await response.json()
    assert accepted["status"] == "pending"
    location = response.headers["Location"]
    assert location == f"/v1/booking-attempts/{accepted['attempt_id']}"
    # The intent is in the ledger before the 202: the Location answers at once.
    assert (await (await harness.client.get(location)).json())["status"] == "pending"

    outcome = await poll(harness, location)
    assert outcome["status"] == "confirmed"
    assert outcome["attempt_id"] == accepted["attempt_id"]
    assert await harness.appointment_count() == 1


async def test_the_preference_is_found_among_others(harness: Harness) -> None:
    response = await submit(harness, attempt_body(), Prefer="return=minimal, Respond-Async; wait=5")
    assert response.status == 202
    await poll(harness, response.headers["Location"])


async def test_a_repeated_key_replays_the_stored_answer_not_a_new_202(harness: Harness) -> None:
    first = await submit(harness, attempt_body(), **{"Idempotency-Key": "k-async"})
    outcome = await poll(harness, first.headers["Location"])
    again = await submit(harness, attempt_body(), **{"Idempotency-Key": "k-async"})
    assert again.status == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await again.json() == outcome


async def test_invalid_input_is_refused_at_once(harness: Harness) -> None:
    response = await submit(harness, attempt_body(start="2025-10-01T08:00:00Z"))
    assert response.status == 422
    assert await harness.event_count() == 0


async def test_closing_the_app_finishes_or_cancels_background_attempts(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness()
    harness.simulator.add_faults("delay:300@create")
    response = await submit(harness, attempt_body())
    assert response.status == 202
    tracker = harness.client.app[BACKGROUND_ATTEMPTS]
    assert tracker.pending == 1
    await harness.client.close()
    assert tracker.pending == 0
    outcome = await harness.pool.fetchval(
        "SELECT count(*) FROM events WHERE type = 'BookingConfirmed'"
    )
    assert outcome == 1
