"""One start, many spellings: the same instant with another UTC offset is the same request."""

from __future__ import annotations

import pytest

from service.booking.models import BookingRequest
from tests.e2e.conftest import INCIDENT_SLOT, Harness, attempt_body

SPELLINGS = ["2025-10-10T08:00:00+02:00", "2025-10-10T06:00:00+00:00", "2025-10-10T01:00:00-05:00"]


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_the_same_instant_with_another_offset_replays(
    harness: Harness, spelling: str
) -> None:
    key = {"Idempotency-Key": "k-offsets"}
    first_status, first = await harness.book(attempt_body(start=INCIDENT_SLOT), **key)
    second_status, second = await harness.book(attempt_body(start=spelling), **key)
    assert first_status == 201
    assert (second_status, second) == (first_status, first)
    posts = [r for r in harness.simulator.requests if r.method == "POST"]
    assert len(posts) == 1


async def test_another_instant_with_the_same_key_is_still_refused(harness: Harness) -> None:
    key = {"Idempotency-Key": "k-offsets"}
    await harness.book(attempt_body(start=INCIDENT_SLOT), **key)
    status, body = await harness.book(attempt_body(start="2025-10-10T08:00:00Z"), **key)
    assert status == 422
    assert body["error"] == "idempotency_key_reused"


async def test_a_key_stored_with_a_v1_fingerprint_still_replays(harness: Harness) -> None:
    body = attempt_body(start="2025-10-10T08:00:00+02:00")
    key = {"Idempotency-Key": "k-before-v2"}
    first_status, first = await harness.book(body, **key)
    # As a key written before fingerprints were versioned: unprefixed, start as spelled.
    legacy = BookingRequest.model_validate(body).legacy_fingerprint()
    await harness.pool.execute(
        "UPDATE idempotency_keys SET fingerprint = $1 WHERE key = $2", legacy, "k-before-v2"
    )
    second_status, second = await harness.book(body, **key)
    assert (second_status, second) == (first_status, first)
    other_status, other = await harness.book(
        {**body, "attendee": {**body["attendee"], "name": "X Y"}}, **key
    )
    assert other_status == 422
    assert other["error"] == "idempotency_key_reused"


def test_fingerprints_are_versioned_and_read_the_instant() -> None:
    a = BookingRequest.model_validate(attempt_body(start="2025-10-10T08:00:00+02:00"))
    b = BookingRequest.model_validate(attempt_body(start="2025-10-10T06:00:00Z"))
    assert a.fingerprint().startswith("v2:")
    assert a.fingerprint() == b.fingerprint()
    assert a.legacy_fingerprint() != b.legacy_fingerprint()
    assert a.matches_fingerprint(b.fingerprint())
    assert a.matches_fingerprint(a.legacy_fingerprint())
    assert not a.matches_fingerprint(b.legacy_fingerprint())
