"""Event types booking-guard cannot guard (seated, recurring) are refused before any booking."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from service.calcom.simulator.event_types import RECURRING_EVENT_TYPE_ID, SEATED_EVENT_TYPE_ID
from tests.e2e.conftest import PLAIN, RETURNS_EXISTING, Harness, attempt_body


def requests_to(harness: Harness, method: str, prefix: str) -> int:
    return sum(
        1 for r in harness.simulator.requests if r.method == method and r.path.startswith(prefix)
    )


@pytest.mark.parametrize(
    ("event_type_id", "kind"),
    [(SEATED_EVENT_TYPE_ID, "seated"), (RECURRING_EVENT_TYPE_ID, "recurring")],
)
async def test_an_unguardable_kind_is_a_422_naming_it_with_nothing_booked(
    harness: Harness, event_type_id: int, kind: str
) -> None:
    status, body = await harness.book(attempt_body(event_type_id=event_type_id))
    assert status == 422, body
    assert body["error"] == "unsupported_event_type"
    assert body["detail"]["kind"] == kind
    assert body["detail"]["event_type_id"] == event_type_id
    assert await harness.event_count() == 0
    assert requests_to(harness, "POST", "/v2/bookings") == 0
    assert harness.simulator.ledger.bookings == {}


async def test_kinds_are_read_once_per_event_type_and_cached(harness: Harness) -> None:
    for call in ("call_a", "call_b", "call_c"):
        status, body = await harness.book(
            attempt_body(
                call,
                email=f"{call}@example.com",
                event_type_id=PLAIN,
                start=f"2025-10-1{len(call) - 3}T06:00:00Z",
            )
        )
    status, body = await harness.book(attempt_body(event_type_id=RETURNS_EXISTING))
    assert status == 201, body
    assert requests_to(harness, "GET", "/v2/event-types/") == 2
    (sent,) = [r for r in harness.simulator.requests if r.path == f"/v2/event-types/{PLAIN}"]
    assert sent.headers["cal-api-version"] == "2024-06-14"


async def test_a_recurring_answer_is_refused_for_good_and_never_books_again(
    harness: Harness,
) -> None:
    # Cal.com cannot tell the kind (the lookup fails three times): the create goes ahead and
    # Cal.com answers with the series. It must not become a retry that books the series again.
    harness.simulator.add_faults("503@event_type", "503@event_type", "503@event_type")
    body: dict[str, Any] = attempt_body(event_type_id=RECURRING_EVENT_TYPE_ID)
    status, answer = await harness.book(body, **{"Idempotency-Key": "k-recurring"})
    assert status == 422, answer
    assert answer["reason"] == answer["error"] == "unsupported_event_type"
    assert answer["retryable"] is False
    # The producer's retry, Cal.com still unable to tell the kind: the key answers as before.
    harness.simulator.add_faults("503@event_type", "503@event_type", "503@event_type")
    status, again = await harness.book(body, **{"Idempotency-Key": "k-recurring"})
    assert status == 422 and again == answer
    # Once the kind is known, the refusal comes first, before the key is even read.
    status, known = await harness.book(body, **{"Idempotency-Key": "k-recurring"})
    assert status == 422 and known["error"] == "unsupported_event_type", known
    assert requests_to(harness, "POST", "/v2/bookings") == 1
    assert len(harness.simulator.ledger.bookings) == 4  # the series, made once
    assert await harness.appointment_count() == 0


async def test_the_simulator_needs_the_event_types_api_version(harness: Harness) -> None:
    url = f"{harness.simulator_url}/v2/event-types/{SEATED_EVENT_TYPE_ID}"
    auth = {"Authorization": "Bearer cal_test"}
    wrong = await harness.client.session.get(url, headers={**auth, "cal-api-version": "2024-08-13"})
    assert wrong.status == 400
    right = await harness.client.session.get(url, headers={**auth, "cal-api-version": "2024-06-14"})
    data = (await right.json())["data"]
    assert data["seats"]["seatsPerTimeSlot"] == 8
    assert data["recurrence"] is None


async def test_a_key_keeps_its_answer_when_the_event_type_turns_seated_later(
    harness: Harness,
) -> None:
    # Booked while Cal.com could not tell the kind (so nothing was cached), then the operator
    # makes the type seated: the producer's retry of that key still gets its booking.
    harness.simulator.add_faults("503@event_type", "503@event_type", "503@event_type")
    body = attempt_body(event_type_id=PLAIN)
    status, first = await harness.book(body, **{"Idempotency-Key": "k-turned"})
    assert status == 201, first
    plain = harness.simulator.ledger.event_types[PLAIN]
    harness.simulator.ledger.event_types[PLAIN] = replace(plain, seats_per_time_slot=4)

    status, again = await harness.book(body, **{"Idempotency-Key": "k-turned"})
    assert status == 201, again
    assert again == first
    status, other = await harness.book(attempt_body("call_new", event_type_id=PLAIN))
    assert status == 422 and other["error"] == "unsupported_event_type"
