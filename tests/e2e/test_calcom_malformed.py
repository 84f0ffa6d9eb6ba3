"""A malformed Cal.com answer ends the attempt with a recorded outcome, never a stuck attempt.

The simulator makes the booking for real and then answers with one field present but unusable,
as a broken Cal.com or a proxy might: the attempt fails retryable (502 calcom_invalid_response,
saying what was wrong), and the producer's retry finds the real booking by reconciling.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Harness, attempt_body

MALFORMATIONS = [
    ("naive_created_at", "createdAt"),
    ("empty_uid", "uid"),
    ("long_uid", "uid"),
    ("nul_uid", "NUL"),
    ("huge_id", "id"),
]


@pytest.mark.parametrize(
    ("malformation", "words"), MALFORMATIONS, ids=[m[0] for m in MALFORMATIONS]
)
async def test_a_malformed_create_answer_is_a_recorded_502(
    harness: Harness, malformation: str, words: str
) -> None:
    harness.simulator.add_faults(f"malformed:{malformation}@create")
    status, body = await harness.book(attempt_body())
    assert status == 502, body
    assert body["status"] == "failed"
    assert body["reason"] == "calcom_invalid_response"
    assert body["retryable"] is True
    assert words in body["detail"]["calcom_message"]
    assert len(body["detail"]["calcom_message"]) < 1000
    assert await harness.event_types() == ["BookingRequested", "BookingFailed"]
    in_flight = await harness.pool.fetchval(
        "SELECT count(*) FROM idempotency_keys WHERE status = 'in_flight'"
    )
    assert in_flight == 0

    # The producer retries: the new attempt looks the booking up first and adopts it.
    status, retried = await harness.book(attempt_body())
    assert status == 201, retried
    assert retried["status"] == "confirmed"
    assert len(harness.simulator.ledger.bookings) == 1


async def test_a_malformed_lookup_during_reconciliation_is_recorded_too(harness: Harness) -> None:
    harness.simulator.add_faults("malformed:naive_created_at@create", "malformed:nul_uid@find")
    first_status, _ = await harness.book(attempt_body())
    status, body = await harness.book(attempt_body())
    assert (first_status, status) == (502, 502), body
    assert body["reason"] == "calcom_invalid_response"
    types = await harness.event_types()
    assert types.count("BookingFailed") == 2
    status, body = await harness.book(attempt_body())
    assert status == 201, body
