"""The guard chain as plain async code: the sixteen cases of the incident report's test plan."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.booking.guards import (
    AttemptFacts,
    ExistingAppointment,
    booking_status,
    call_identity,
    default_guards,
    existing_appointment,
    freshness,
    run_guards,
    slot_match,
)
from service.calcom.port import CalcomBooking

CALLED_AT = datetime(2025, 10, 6, 9, 40, 0, tzinfo=UTC)
SLOT = datetime(2025, 10, 10, 6, 0, tzinfo=UTC)
CALL_687 = "call_927bf219b2cc20cd24dc97c9f0b"
CALL_688 = "call_39d2ade6f4fc16c51110ca49cdf"
MAX_AGE = timedelta(seconds=30)


class Appointments:
    """An in-memory AppointmentLookup: the guard's port, implemented for real."""

    def __init__(self, *held: ExistingAppointment) -> None:
        self._by_uid = {a.booking_uid: a for a in held}

    async def by_booking_uid(self, booking_uid: str) -> ExistingAppointment | None:
        return self._by_uid.get(booking_uid)


def attempt(call_id: str = CALL_688) -> AttemptFacts:
    attempt_id = uuid.uuid4()
    return AttemptFacts(
        attempt_id=attempt_id,
        call_id=call_id,
        start=SLOT,
        attendee_email="termin@example.com",
        first_called_at=CALLED_AT,
        own_attempt_ids=frozenset({attempt_id}),
    )


def booking(
    *,
    age: timedelta | None = timedelta(seconds=5),
    call_id: str | None = CALL_688,
    metadata: dict[str, Any] | None = None,
    uid: str = "8Fxv4pCqnb1Jva1w9wn5wX",
) -> CalcomBooking:
    data: dict[str, Any] = {
        "id": 11489895,
        "uid": uid,
        "status": "accepted",
        "start": SLOT.isoformat(),
        "attendees": [{"name": "Hansi Sputer", "email": "termin@example.com"}],
    }
    if age is not None:
        data["createdAt"] = (CALLED_AT - age).isoformat()
    if metadata is not None:
        data["metadata"] = metadata
    elif call_id is not None:
        data["metadata"] = {"call_id": call_id}
    return CalcomBooking.from_calcom(data)


def held_by(call_id: str, uid: str = "8Fxv4pCqnb1Jva1w9wn5wX") -> ExistingAppointment:
    return ExistingAppointment(
        appointment_id=uuid.uuid4(), call_id=call_id, attempt_id=uuid.uuid4(), booking_uid=uid
    )


# Layer 1: freshness


async def test_accepts_booking_created_5_seconds_before_the_attempt() -> None:
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=timedelta(seconds=5)))
    assert verdict.passed


async def test_accepts_booking_exactly_at_the_30_second_boundary() -> None:
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=timedelta(seconds=30)))
    assert verdict.passed


async def test_rejects_booking_created_35_seconds_before_the_attempt() -> None:
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=timedelta(seconds=35)))
    assert verdict.reason == "stale_booking"
    assert verdict.detail["age_seconds"] == 35.0
    assert verdict.layer == 1


async def test_rejects_booking_created_2_minutes_before_the_attempt() -> None:
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=timedelta(minutes=2)))
    assert verdict.reason == "stale_booking"


async def test_missing_created_at_passes_and_is_noted() -> None:
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=None))
    assert verdict.passed
    assert verdict.notes == ("booking has no createdAt",)


async def test_freshness_is_measured_from_the_attempt_not_from_now() -> None:
    # A booking made 1 s after the attempt first called is fresh however late we look at it.
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=timedelta(seconds=-1)))
    assert verdict.passed


# Layer 2: call identity


async def test_accepts_booking_with_matching_call_id() -> None:
    assert (await call_identity(attempt(CALL_688), booking(call_id=CALL_688))).passed


async def test_rejects_booking_with_another_calls_call_id() -> None:
    verdict = await call_identity(attempt(CALL_688), booking(call_id=CALL_687))
    assert verdict.reason == "call_id_mismatch"
    assert verdict.detail == {"expected_call_id": CALL_688, "booking_call_id": CALL_687}


async def test_missing_metadata_passes_and_is_noted() -> None:
    verdict = await call_identity(attempt(), booking(call_id=None))
    assert verdict.passed
    assert verdict.notes == ("booking has no metadata",)
    verdict = await call_identity(attempt(), booking(metadata={"source": "phone"}))
    assert verdict.passed
    assert verdict.notes == ("booking metadata has no call_id",)


# The incident, and layers together


async def test_rejects_the_real_incident() -> None:
    """Call 688 got call 687's booking, 35 minutes old."""
    incident = CalcomBooking.from_calcom(
        {
            "id": 11489895,
            "uid": "8Fxv4pCqnb1Jva1w9wn5wX",
            "createdAt": "2025-10-06T09:05:21.002Z",
            "metadata": {"call_id": CALL_687},
            "attendees": [{"name": "Hansi Sputer"}],
        }
    )
    call_688 = AttemptFacts(
        attempt_id=uuid.uuid4(),
        call_id=CALL_688,
        start=SLOT,
        attendee_email="termin@example.com",
        first_called_at=datetime(2025, 10, 6, 9, 39, 27, tzinfo=UTC),
    )
    chain = await run_guards(
        default_guards(max_age=MAX_AGE, lookup=Appointments()), call_688, incident
    )
    assert chain.rejection is not None
    assert chain.rejection.reason == "stale_booking"
    assert [f["reason"] for f in chain.failures()] == ["stale_booking", "call_id_mismatch"]


async def test_reports_both_layers_when_both_fail() -> None:
    chain = await run_guards(
        [freshness(MAX_AGE), call_identity],
        attempt(CALL_688),
        booking(age=timedelta(minutes=35), call_id=CALL_687),
    )
    assert [(f["guard"], f["reason"]) for f in chain.failures()] == [
        ("freshness", "stale_booking"),
        ("call_identity", "call_id_mismatch"),
    ]


# Layer 3: existing appointment


async def test_new_appointment_when_the_uid_is_unique() -> None:
    verdict = await existing_appointment(Appointments(held_by(CALL_687, uid="other")))(
        attempt(), booking()
    )
    assert verdict.passed
    assert verdict.existing is None


async def test_existing_appointment_returned_when_the_uid_exists_for_the_same_call() -> None:
    mine = held_by(CALL_688)
    verdict = await existing_appointment(Appointments(mine))(attempt(CALL_688), booking())
    assert verdict.passed
    assert verdict.existing == mine


async def test_cross_customer_duplicate_is_prevented() -> None:
    theirs = held_by(CALL_687)
    verdict = await existing_appointment(Appointments(theirs))(attempt(CALL_688), booking())
    assert verdict.reason == "duplicate_booking"
    assert verdict.detail["held_by_call_id"] == CALL_687


async def test_all_layers_together_stop_at_the_first_and_report_every_failure() -> None:
    chain = await run_guards(
        default_guards(max_age=MAX_AGE, lookup=Appointments(held_by(CALL_687))),
        attempt(CALL_688),
        booking(age=timedelta(minutes=2), call_id=CALL_687),
    )
    assert chain.rejection is not None
    assert chain.rejection.guard == "freshness"
    assert [f["layer"] for f in chain.failures()] == [1, 2, 3]


async def test_a_fresh_booking_passes_every_layer() -> None:
    chain = await run_guards(
        default_guards(max_age=MAX_AGE, lookup=Appointments()), attempt(), booking()
    )
    assert chain.rejection is None
    assert [v.guard for v in chain.verdicts] == [
        "freshness",
        "call_identity",
        "existing_appointment",
        "slot_match",
        "status",
    ]


# Beyond the seed: the booking must be the one asked for


async def test_rejects_a_booking_for_another_slot() -> None:
    moved = CalcomBooking.from_calcom(
        {"uid": "x", "start": (SLOT + timedelta(hours=1)).isoformat(), "attendees": []}
    )
    verdict = await slot_match(attempt(), moved)
    assert verdict.reason == "slot_mismatch"


async def test_rejects_a_booking_for_another_attendee() -> None:
    other = CalcomBooking.from_calcom(
        {"uid": "x", "start": SLOT.isoformat(), "attendees": [{"email": "x@example.org"}]}
    )
    verdict = await slot_match(attempt(), other)
    assert verdict.reason == "attendee_mismatch"


@pytest.mark.parametrize("seconds", [0, 29.999, 30])
async def test_boundary_and_below_pass(seconds: float) -> None:
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=timedelta(seconds=seconds)))
    assert verdict.passed


# Beyond the seed: the booking's status, and ownership proof (DESIGN.md §4, issue 12)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("accepted", None),
        ("pending", None),
        ("ACCEPTED", None),
        ("cancelled", "booking_cancelled"),
        ("rejected", "booking_rejected"),
        ("awaiting_payment", "booking_not_live"),
    ],
)
async def test_only_a_live_booking_passes_the_status_guard(status: str, reason: str | None) -> None:
    live = booking().model_copy(update={"status": status})
    verdict = await booking_status(attempt(), live)
    assert verdict.reason == reason
    assert verdict.guard == "status"


async def test_a_missing_status_passes_and_is_noted() -> None:
    verdict = await booking_status(attempt(), booking().model_copy(update={"status": None}))
    assert verdict.passed and verdict.notes == ("booking has no status",)


async def test_our_own_booking_passes_freshness_whatever_cal_coms_clock_says() -> None:
    facts = attempt()
    ours = booking(
        age=timedelta(seconds=45),
        metadata={"call_id": CALL_688, "attempt_id": str(facts.attempt_id)},
    )
    # Cal.com's clock 45 s behind ours: its createdAt looks 45 s old, but the booking is ours.
    assert (await freshness(MAX_AGE)(facts, ours)).passed
    # The same age on a booking naming another attempt is refused.
    other = booking(
        age=timedelta(seconds=45), metadata={"call_id": CALL_688, "attempt_id": str(uuid.uuid4())}
    )
    assert (await freshness(MAX_AGE)(facts, other)).reason == "stale_booking"


@pytest.mark.parametrize("seconds", [30.001, 31])
async def test_just_above_the_boundary_is_refused(seconds: float) -> None:
    verdict = await freshness(MAX_AGE)(attempt(), booking(age=timedelta(seconds=seconds)))
    assert verdict.reason == "stale_booking"
