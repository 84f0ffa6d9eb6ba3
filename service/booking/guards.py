"""The guard chain: checks on Cal.com's answer before a booking is believed (DESIGN.md §4).

Each guard is a plain async function of the attempt and the booking Cal.com returned, with a
stable name and layer. Layer 4, the unique index on appointments.booking_uid, is not here: it is
the database's own refusal, met by the workflow when it inserts the appointment.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from service.calcom.port import CalcomBooking


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    """What the guards know about the attempt that asked Cal.com."""

    attempt_id: uuid.UUID
    call_id: str
    start: datetime
    attendee_email: str | None
    # Freshness is measured from here, not from now: an attempt re-driven after a crash must
    # still recognise the booking it made itself (DESIGN.md §4, layer 1).
    first_called_at: datetime
    # Every attempt under this idempotency key: a booking whose metadata names one was made by
    # us, whatever its createdAt says (Cal.com's clock may be behind ours).
    own_attempt_ids: frozenset[uuid.UUID] = frozenset()

    def made(self, booking: CalcomBooking) -> bool:
        """Whether `booking` carries one of this key's attempt ids: proof that we made it."""
        return made_by(booking, self.own_attempt_ids)


def made_by(booking: CalcomBooking, attempt_ids: frozenset[uuid.UUID]) -> bool:
    """Whether the booking's `metadata.attempt_id` names one of `attempt_ids`."""
    attempt_id = attempt_of(booking)
    return attempt_id is not None and attempt_id in attempt_ids


def attempt_of(booking: CalcomBooking) -> uuid.UUID | None:
    """The attempt the booking's `metadata.attempt_id` names, if it names one."""
    value = (booking.metadata or {}).get("attempt_id")
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def is_live(booking: CalcomBooking) -> bool:
    """Whether Cal.com holds the booking as accepted or pending (a missing status counts)."""
    return booking.status is None or booking.status.lower() in LIVE_STATUSES


@dataclass(frozen=True, slots=True)
class ExistingAppointment:
    appointment_id: uuid.UUID
    call_id: str
    attempt_id: uuid.UUID
    booking_uid: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """One guard's answer. `reason` is None when it passed; `notes` record missing data."""

    guard: str
    layer: int
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    existing: ExistingAppointment | None = None

    @property
    def passed(self) -> bool:
        return self.reason is None


Guard = Callable[[AttemptFacts, CalcomBooking], Awaitable[Verdict]]


class AppointmentLookup(Protocol):
    async def by_booking_uid(self, booking_uid: str) -> ExistingAppointment | None: ...


def freshness(max_age: timedelta) -> Guard:
    """Layer 1: refuse a booking created more than `max_age` before this attempt called."""

    async def check(attempt: AttemptFacts, booking: CalcomBooking) -> Verdict:
        if attempt.made(booking):
            # Ownership proof beats freshness: clock skew cannot refuse our own booking.
            return Verdict("freshness", 1)
        if booking.created_at is None:
            return Verdict("freshness", 1, notes=("booking has no createdAt",))
        age = attempt.first_called_at - booking.created_at
        if age > max_age:
            return Verdict(
                "freshness",
                1,
                "stale_booking",
                {
                    "created_at": booking.created_at.isoformat(),
                    "first_called_at": attempt.first_called_at.isoformat(),
                    "age_seconds": age.total_seconds(),
                    "max_age_seconds": max_age.total_seconds(),
                },
            )
        return Verdict("freshness", 1)

    return check


async def call_identity(attempt: AttemptFacts, booking: CalcomBooking) -> Verdict:
    """Layer 2: refuse a booking whose metadata names another call."""
    if attempt.made(booking):
        return Verdict("call_identity", 2)
    if booking.metadata is None:
        return Verdict("call_identity", 2, notes=("booking has no metadata",))
    booked_call = booking.metadata.get("call_id")
    if booked_call is None:
        return Verdict("call_identity", 2, notes=("booking metadata has no call_id",))
    if booked_call != attempt.call_id:
        return Verdict(
            "call_identity",
            2,
            "call_id_mismatch",
            {"expected_call_id": attempt.call_id, "booking_call_id": booked_call},
        )
    return Verdict("call_identity", 2)


class ExistingAppointmentGuard:
    """Layer 3: refuse a booking another call already holds; the same call gets its own back.

    `deferrable` when its lookup reads the appointments table whose unique index on
    booking_uid (layer 4) refuses the confirmation of a booking someone holds: the workflow may
    then skip the lookup before a confirmation and run it only when the index refuses one, so
    that the common path does not pay a round trip for it (bench/README.md).
    """

    def __init__(self, lookup: AppointmentLookup) -> None:
        self.lookup = lookup
        self.deferrable = bool(getattr(lookup, "behind_unique_index", False))

    async def __call__(self, attempt: AttemptFacts, booking: CalcomBooking) -> Verdict:
        found = await self.lookup.by_booking_uid(booking.uid)
        if found is None:
            return Verdict("existing_appointment", 3)
        if found.call_id == attempt.call_id:
            return Verdict("existing_appointment", 3, existing=found)
        return Verdict(
            "existing_appointment",
            3,
            "duplicate_booking",
            {
                "booking_uid": booking.uid,
                "appointment_id": str(found.appointment_id),
                "held_by_call_id": found.call_id,
            },
        )


async def _no_existing_appointment(attempt: AttemptFacts, booking: CalcomBooking) -> Verdict:
    return Verdict("existing_appointment", 3)


def existing_appointment(lookup: AppointmentLookup) -> Guard:
    """Layer 3: refuse a booking another call already holds; the same call gets its own back."""
    return ExistingAppointmentGuard(lookup)


def deferring_layer_3(guards: Sequence[Guard]) -> list[Guard] | None:
    """The chain with a deferrable layer 3 assumed to pass (None: nothing to defer).

    Its passing verdict is the one the lookup gives when it finds nothing; the workflow runs
    the full chain whenever this one refuses, and when the unique index refuses the
    confirmation, so every recorded verdict is the full chain's.
    """
    if not any(isinstance(g, ExistingAppointmentGuard) and g.deferrable for g in guards):
        return None
    return [
        _no_existing_appointment if isinstance(g, ExistingAppointmentGuard) and g.deferrable else g
        for g in guards
    ]


async def slot_match(attempt: AttemptFacts, booking: CalcomBooking) -> Verdict:
    """Beyond the seed: the booking must be for the slot and attendee that were asked for."""
    if booking.start is not None and booking.start != attempt.start:
        return Verdict(
            "slot_match",
            5,
            "slot_mismatch",
            {
                "requested_start": attempt.start.isoformat(),
                "booking_start": booking.start.isoformat(),
            },
        )
    emails = {a.email.lower() for a in booking.attendees if a.email}
    if attempt.attendee_email and emails and attempt.attendee_email.lower() not in emails:
        return Verdict(
            "slot_match",
            5,
            "attendee_mismatch",
            {"requested_email": attempt.attendee_email, "booking_emails": sorted(emails)},
        )
    return Verdict("slot_match", 5)


# Only an accepted booking confirms; a pending one awaits the host (pending_confirmation).
LIVE_STATUSES = frozenset({"accepted", "pending"})
_DEAD_STATUSES = {"cancelled": "booking_cancelled", "rejected": "booking_rejected"}


async def booking_status(attempt: AttemptFacts, booking: CalcomBooking) -> Verdict:
    """Refuse a booking Cal.com does not hold as live: cancelled, rejected, or unknown."""
    if booking.status is None:
        return Verdict("status", 6, notes=("booking has no status",))
    status = booking.status.lower()
    if status in LIVE_STATUSES:
        return Verdict("status", 6)
    reason = _DEAD_STATUSES.get(status, "booking_not_live")
    return Verdict("status", 6, reason, {"booking_status": booking.status})


@dataclass(frozen=True, slots=True)
class ChainResult:
    """Every verdict, in order; the first rejection is the chain's answer."""

    verdicts: tuple[Verdict, ...]

    @property
    def rejection(self) -> Verdict | None:
        return next((v for v in self.verdicts if not v.passed), None)

    @property
    def existing(self) -> ExistingAppointment | None:
        return next((v.existing for v in self.verdicts if v.existing is not None), None)

    @property
    def notes(self) -> list[str]:
        return [note for v in self.verdicts for note in v.notes]

    def failures(self) -> list[dict[str, Any]]:
        return [
            {"guard": v.guard, "layer": v.layer, "reason": v.reason, "detail": v.detail}
            for v in self.verdicts
            if not v.passed
        ]


async def run_guards(
    guards: Sequence[Guard], attempt: AttemptFacts, booking: CalcomBooking
) -> ChainResult:
    """Run every guard in order (all of them, so the audit shows each layer that failed)."""
    return ChainResult(tuple([await guard(attempt, booking) for guard in guards]))


def default_guards(*, max_age: timedelta, lookup: AppointmentLookup) -> list[Guard]:
    """Layers 1 to 3, the slot check and the status, in the order of DESIGN.md §4."""
    return [
        freshness(max_age),
        call_identity,
        existing_appointment(lookup),
        slot_match,
        booking_status,
    ]
