"""Cal.com's rate limit as Cal.com enforces it, and one budget per key shared by every process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.booking.calcom_budget import SharedCalcomBudget
from service.calcom.rate_limit import CalcomRateLimited
from tests.e2e.conftest import PLAIN, Harness, MakeHarness, attempt_body


def booking(n: int) -> dict[str, object]:
    return attempt_body(
        f"call_{n}",
        email=f"caller{n}@example.com",
        event_type_id=PLAIN,
        start=f"2025-10-10T{9 + n:02d}:00:00Z",
    )


def sent(harness: Harness) -> int:
    return len(harness.simulator.requests)


def enforce(harness: Harness, limit: int) -> list[float]:
    """Make the simulator enforce `limit`; the returned list moves its rate clock."""
    moved = [1000.0]
    harness.simulator.rate_limit, harness.simulator.enforce_rate_limit = limit, True
    harness.simulator.monotonic = lambda: moved[0]
    return moved


async def test_the_simulator_blocks_a_key_for_60_s_after_the_first_request_over(
    harness: Harness,
) -> None:
    moved = enforce(harness, 2)
    url = f"{harness.simulator_url}/v2/bookings"
    headers = {"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test"}
    answers = []
    for _ in range(4):
        async with harness.client.session.get(url, headers=headers) as response:
            answers.append((response.status, response.headers["X-RateLimit-Reset-Default"]))
            if response.status == 429:
                body = await response.json()
    assert [status for status, _ in answers] == [200, 200, 429, 429]
    assert answers[2][1] == "60"
    assert body["error"]["message"] == (
        "CustomThrottlerGuard - Too many requests. Please try again later."
    )
    moved[0] += 59
    async with harness.client.session.get(url, headers=headers) as response:
        assert response.status == 429 and response.headers["X-RateLimit-Reset-Default"] == "1"
    moved[0] += 1
    async with harness.client.session.get(url, headers=headers) as response:
        assert response.status == 200


async def test_calcoms_429_is_a_503_with_retry_after_from_its_reset(harness: Harness) -> None:
    enforce(harness, 2)  # the event type's lookup and one create
    status, _ = await harness.book(booking(1))
    assert status == 201
    status, body = await harness.book(booking(2))
    assert status == 503, body
    assert body["reason"] == "calcom_rate_limited"
    assert body["detail"]["retry_after_seconds"] == 60
    creates = [r for r in harness.simulator.requests if r.method == "POST"]
    assert len(creates) == 2  # not retried into the block


async def test_a_spent_budget_is_refused_at_once_without_a_doomed_request(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(calcom_rate_limit=120)
    moved = enforce(harness, 4)  # Cal.com announces 4 a minute: the budget follows it
    for n in (1, 2, 3):  # event type + 3 creates: the last answer says 0 remain
        status, body = await harness.book(booking(n))
        assert status == 201, body
    before = sent(harness)

    response = await harness.client.post("/v1/booking-attempts", json=booking(4))
    body = await response.json()
    assert response.status == 503, body
    assert body["reason"] == "calcom_rate_limited"
    assert 55 <= int(response.headers["Retry-After"]) <= 60
    assert sent(harness) == before  # nothing was sent to Cal.com

    # Another process on the same database, same key: the same spent budget.
    other = SharedCalcomBudget(harness.pool, api_key="cal_test", limit=120, clock=harness.clock)
    with pytest.raises(CalcomRateLimited):
        await other.take()

    harness.clock.advance(timedelta(seconds=61))
    moved[0] += 61
    status, body = await harness.book(booking(4))
    assert status == 201, body
