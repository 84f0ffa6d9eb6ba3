"""Cal.com refusing our API key: the operator's problem, told as such, and retryable."""

from __future__ import annotations

import logging

import pytest

from tests.e2e.conftest import MakeHarness, attempt_body

KEY = "cal_live_0123456789abcdef0123456789abcdef"


async def test_a_revoked_key_is_a_502_that_books_once_the_key_is_fixed(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await make_harness(calcom_api_key=KEY)
    revoke = await harness.client.session.post(
        f"{harness.simulator_url}/_simulator/keys/revoke", json={"key": KEY}
    )
    assert revoke.status == 200

    with caplog.at_level(logging.ERROR, logger="service.calcom.client"):
        status, body = await harness.book(attempt_body(), **{"Idempotency-Key": "k-auth"})
    assert status == 502, body
    assert body["reason"] == "calcom_auth_failed"
    assert body["retryable"] is True
    assert body["detail"]["calcom_status"] == 401
    assert body["detail"]["calcom_message"] == "CustomThrottlerGuard - Invalid API Key"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    # One per refused request (the event type's lookup, then the create).
    assert errors and all("cal_live…" in r.getMessage() for r in errors)
    assert KEY not in caplog.text and KEY[:12] not in caplog.text

    metrics = await (await harness.client.get("/metrics")).text()
    assert "booking_guard_calcom_auth_failures_total 1.0" in metrics

    # The operator restores the key: the producer's retry with the same key books.
    await harness.client.session.post(
        f"{harness.simulator_url}/_simulator/keys/restore", json={"key": KEY}
    )
    status, body = await harness.book(attempt_body(), **{"Idempotency-Key": "k-auth"})
    assert status == 201, body
    assert await harness.event_types() == [
        "BookingRequested",
        "BookingFailed",
        "BookingRequested",
        "CalcomBookingReceived",
        "BookingConfirmed",
    ]


async def test_other_keys_are_accepted_by_the_simulator(make_harness: MakeHarness) -> None:
    harness = await make_harness(calcom_api_key=KEY)
    await harness.client.session.post(
        f"{harness.simulator_url}/_simulator/keys/revoke", json={"key": "cal_someone_else"}
    )
    status, body = await harness.book(attempt_body())
    assert status == 201, body
