"""Outcomes of booking attempts: recorded in phase 3, and read back from the ledger.

`OutcomeRecorder` turns what Cal.com and the guards said into the attempt's one outcome and
records it atomically: the outcome events, the appointment and the key's answer. A confirmation
inserts the appointment in the statement that appends BookingConfirmed
(service/booking/phase_writes.py), so the unique index on booking_uid refuses a second
appointment (layer 4) before the confirmation can land; the refusal then becomes a rejection,
recorded in a statement of its own. `outcome_from_events` reads an outcome back from the
attempt's stream.

No HTTP status is chosen here: the edge maps each outcome to one.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

from events.booking import (
    BookingAlreadyHeld,
    BookingConfirmed,
    BookingFailed,
    BookingRejected,
    CalcomBookingReceived,
    attempt_stream,
)
from events.errors import WrongExpectedVersion
from events.models import Event, NewEvent
from events.store import EventStore
from projections import appointments
from service.booking import phase_writes
from service.booking.attempt import Attempt, event_metadata
from service.booking.clock import Clock
from service.booking.guards import ChainResult
from service.booking.models import Appointment, AttemptOutcome, OutcomeStatus
from service.calcom.port import (
    UNSUPPORTED_EVENT_TYPE,
    CalcomAuthFailed,
    CalcomBooking,
    CalcomError,
    CalcomInvalidResponse,
    CalcomSlotUnavailable,
)

Observer = Callable[[AttemptOutcome], None]


class OutcomeRecorder:
    """Turns what Cal.com and the guards said into the attempt's one outcome."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        store: EventStore,
        clock: Clock,
        holder: str,
        observer: Observer | None = None,
        orphan_grace: timedelta = timedelta(seconds=600),
    ) -> None:
        self._pool = pool
        self._orphan_grace = orphan_grace
        self._store = store
        self._clock = clock
        self._holder = holder
        # Told of each outcome this process records (metrics); never of replays.
        self._observer = observer

    def received(
        self, attempt: Attempt, booking: CalcomBooking, *, reconciled: bool
    ) -> CalcomBookingReceived:
        return CalcomBookingReceived(
            attempt_id=attempt.attempt_id,
            call_id=attempt.requested.call_id,
            booking_uid=booking.uid,
            booking_id=booking.id,
            status=booking.status,
            start=booking.start,
            end=booking.end,
            created_at=booking.created_at,
            booking_metadata=booking.metadata,
            attendees=[a.model_dump(exclude_none=True) for a in booking.attendees],
            first_called_at=attempt.first_called_at,
            received_at=self._clock.now(),
            reconciled=reconciled,
        )

    async def confirm(
        self,
        attempt: Attempt,
        received: CalcomBookingReceived,
        booking: CalcomBooking,
        chain: ChainResult,
        *,
        layer_3_deferred: bool = False,
    ) -> AttemptOutcome:
        """Record the confirmation and its appointment. With `layer_3_deferred` (the chain ran
        without layer 3's lookup), AppointmentExists is raised for the caller to run it; nothing
        was written then."""
        r = attempt.requested
        pending = (booking.status or "").lower() == "pending"
        confirmed = BookingConfirmed(
            attempt_id=attempt.attempt_id,
            appointment_id=attempt.attempt_id,
            call_id=r.call_id,
            booking_uid=booking.uid,
            booking_id=booking.id,
            event_type_id=r.event_type_id,
            start=booking.start or r.start,
            end=booking.end,
            attendee_name=r.attendee.name,
            attendee_email=r.attendee.email,
            confirmed_at=self._clock.now(),
            status="pending" if pending else "booked",
        )
        outcome = AttemptOutcome(
            attempt_id=attempt.attempt_id,
            status="pending_confirmation" if pending else "confirmed",
            appointment=appointment_from(confirmed),
            detail={"notes": chain.notes} if chain.notes else None,
        )
        try:
            return await self._record(attempt, [received, confirmed], outcome, apply=confirmed)
        except appointments.AppointmentExists:
            if layer_3_deferred:
                raise
            # Layer 4: a race none of the other layers could see. The confirmation rolled back
            # with the refused insert. When the winner is this same call (two of its keys at
            # once), the call holds the booking: answer with it; otherwise refuse.
            row = await appointments.by_booking_uid(self._pool, booking.uid)
            if row is not None and row["call_id"] == r.call_id:
                return await self.held(attempt, row, received=received)
            rejected = self._rejected_event(
                attempt,
                guard="database_constraint",
                layer=4,
                reason="duplicate_booking",
                detail={"booking_uid": booking.uid, "constraint": appointments.UNIQUE_INDEX},
                booking_uid=booking.uid,
            )
            return await self._record(
                attempt, [received, rejected], rejected_outcome(attempt.attempt_id, rejected)
            )

    async def held(
        self,
        attempt: Attempt,
        row: dict[str, Any],
        *,
        received: CalcomBookingReceived | None = None,
    ) -> AttemptOutcome:
        """The call already holds this slot's appointment: answer with it (BookingAlreadyHeld)."""
        appointment = appointment_from_row(row)
        event = BookingAlreadyHeld(
            attempt_id=attempt.attempt_id,
            call_id=attempt.requested.call_id,
            appointment_id=appointment.appointment_id,
            booking_uid=appointment.booking_uid,
            held_at=self._clock.now(),
        )
        outcome = current(
            AttemptOutcome(
                attempt_id=attempt.attempt_id,
                status="confirmed",
                appointment=appointment,
                detail={"existing_attempt_id": str(appointment.attempt_id)},
                held=True,
            ),
            row,
        )
        events: list[Event] = [event] if received is None else [received, event]
        return await self._record(attempt, events, outcome)

    async def reject(
        self, attempt: Attempt, received: CalcomBookingReceived, chain: ChainResult
    ) -> AttemptOutcome:
        first = chain.rejection
        assert first is not None
        rejected = self._rejected_event(
            attempt,
            guard=first.guard,
            layer=first.layer,
            reason=first.reason or "rejected",
            detail={**first.detail, "failures": chain.failures(), "notes": chain.notes},
            booking_uid=received.booking_uid,
        )
        return await self._record(
            attempt, [received, rejected], rejected_outcome(attempt.attempt_id, rejected)
        )

    async def reject_by_calcom(
        self, attempt: Attempt, error: CalcomSlotUnavailable
    ) -> AttemptOutcome:
        rejected = self._rejected_event(
            attempt,
            guard="calcom",
            layer=None,
            reason="slot_unavailable",
            detail={"calcom_status": error.status, "calcom_message": error.message},
        )
        return await self._record(
            attempt, [rejected], rejected_outcome(attempt.attempt_id, rejected)
        )

    async def fail(
        self, attempt: Attempt, error: CalcomError, *, retryable: bool, maybe_written: bool = False
    ) -> AttemptOutcome:
        reason = failure_reason(error, retryable=retryable)
        failed = BookingFailed(
            attempt_id=attempt.attempt_id,
            call_id=attempt.requested.call_id,
            reason=reason,
            retryable=retryable,
            status_code=error.status,
            message=error.message,
            failed_at=self._clock.now(),
            maybe_written=maybe_written,
        )
        detail: dict[str, Any] = {"calcom_status": error.status, "calcom_message": error.message}
        if retryable and error.retry_after is not None:
            # When Cal.com's reset lets this key book again; the edge sends it as Retry-After.
            detail["retry_after_seconds"] = math.ceil(error.retry_after)
        outcome = AttemptOutcome(
            attempt_id=attempt.attempt_id,
            status="failed",
            reason=reason,
            retryable=retryable,
            detail=detail,
        )
        return await self._record(attempt, [failed], outcome, reconcile=maybe_written)

    def _rejected_event(
        self,
        attempt: Attempt,
        *,
        guard: str,
        layer: int | None,
        reason: str,
        detail: dict[str, object],
        booking_uid: str | None = None,
    ) -> BookingRejected:
        return BookingRejected(
            attempt_id=attempt.attempt_id,
            call_id=attempt.requested.call_id,
            guard=guard,
            layer=layer,
            reason=reason,
            detail=detail,
            booking_uid=booking_uid,
            rejected_at=self._clock.now(),
        )

    async def _record(
        self,
        attempt: Attempt,
        events: Sequence[Event],
        outcome: AttemptOutcome,
        *,
        apply: BookingConfirmed | None = None,
        reconcile: bool = False,
    ) -> AttemptOutcome:
        """Phase 3: the outcome events, the appointment and the key's answer, atomically.

        A failure that may have written leaves the key unfinished (`retryable`) and queues it
        for the reconciler (service/booking/reconciler.py), which looks in Cal.com later.
        """
        retry = outcome.status == "failed" and (outcome.retryable or reconcile)
        key_status = "retryable" if retry else "finished"
        metadata = event_metadata(self._holder, attempt.correlation_id)
        try:
            await phase_writes.record(
                self._pool,
                stream_id=attempt_stream(attempt.attempt_id),
                expected_version=1,  # after the intent
                events=[self._store.encode(NewEvent(e, metadata=metadata)) for e in events],
                key=attempt.key,
                attempt_id=attempt.attempt_id,
                key_status=key_status,
                response_body=outcome.model_dump(mode="json"),
                now=self._clock.now(),
                confirmed=apply,
                # The producer may come back with its key until then and get the booking.
                reconcile_at=self._clock.now() + self._orphan_grace if reconcile else None,
            )
        except WrongExpectedVersion:
            # Another process (recovery) recorded this attempt's outcome first: answer with it.
            recorded = await self.outcome_of(attempt.attempt_id)
            if recorded is None:
                raise
            return recorded
        self._store.wake_subscribers()
        if self._observer is not None:
            self._observer(outcome)
        return outcome

    async def outcome_of(self, attempt_id: uuid.UUID) -> AttemptOutcome | None:
        """The attempt's outcome as the ledger has it; `pending` while in flight."""
        events = await self._store.read_stream(attempt_stream(attempt_id))
        if not events:
            return None
        return await outcome_from_events(self._pool, attempt_id, [e.event for e in events])


async def outcome_from_events(
    pool: asyncpg.Pool, attempt_id: uuid.UUID, events: Sequence[Event]
) -> AttemptOutcome:
    """The outcome of an attempt from its stream's events; `pending` without one."""
    for event in reversed(events):
        match event:
            case BookingConfirmed():
                row = await appointments.get(pool, event.appointment_id)
                confirmed = AttemptOutcome(
                    attempt_id=attempt_id, status="confirmed", appointment=appointment_from(event)
                )
                return current(confirmed, row)
            case BookingAlreadyHeld():
                row = await appointments.get(pool, event.appointment_id)
                held = AttemptOutcome(attempt_id=attempt_id, status="confirmed", held=True)
                return current(held, row)
            case BookingRejected(reason="already_confirmed_for_call"):
                # Recorded before BookingAlreadyHeld existed: the same answer.
                row = await appointments.by_booking_uid(pool, event.booking_uid or "")
                held = AttemptOutcome(attempt_id=attempt_id, status="confirmed", held=True)
                return current(held, row)
            case BookingRejected():
                return rejected_outcome(attempt_id, event)
            case BookingFailed():
                return AttemptOutcome(
                    attempt_id=attempt_id,
                    status="failed",
                    reason=event.reason,
                    retryable=event.retryable,
                    detail={"calcom_status": event.status_code, "calcom_message": event.message},
                )
    return AttemptOutcome(attempt_id=attempt_id, status="pending")


def appointment_from(event: BookingConfirmed) -> Appointment:
    return Appointment(
        appointment_id=event.appointment_id,
        booking_uid=event.booking_uid,
        booking_id=event.booking_id,
        call_id=event.call_id,
        attempt_id=event.attempt_id,
        event_type_id=event.event_type_id,
        start=event.start,
        end=event.end,
        attendee_name=event.attendee_name,
        attendee_email=event.attendee_email,
        status=event.status,
    )


def appointment_from_row(row: dict[str, Any]) -> Appointment:
    return Appointment.model_validate({**row, "start": row["start_at"], "end": row["end_at"]})


# A confirmation's status on the wire follows its appointment's state now (invariant 7).
_BY_APPOINTMENT: dict[str, OutcomeStatus] = {
    "booked": "confirmed",
    "pending": "pending_confirmation",
    "cancelled": "cancelled",
    "declined": "declined",
}


def current(outcome: AttemptOutcome, row: dict[str, Any] | None) -> AttemptOutcome:
    """A confirmation as true now: its appointment's current row, and the status it implies.

    A replayed or re-read answer must not say `confirmed` for a booking Cal.com has cancelled
    since, nor `pending_confirmation` once the host accepted.
    """
    if row is None or outcome.status not in _CONFIRMATIONS:
        return outcome
    return outcome.model_copy(
        update={"appointment": appointment_from_row(row), "status": _BY_APPOINTMENT[row["status"]]}
    )


_CONFIRMATIONS = frozenset(_BY_APPOINTMENT.values())


def rejected_outcome(attempt_id: uuid.UUID, rejected: BookingRejected) -> AttemptOutcome:
    return AttemptOutcome(
        attempt_id=attempt_id,
        status="rejected",
        reason=rejected.reason,
        guard=rejected.guard,
        detail=rejected.detail,
    )


def failure_reason(error: CalcomError, *, retryable: bool) -> str:
    if not retryable:
        if error.code == UNSUPPORTED_EVENT_TYPE:
            return UNSUPPORTED_EVENT_TYPE
        return "calcom_rejected_request"
    if isinstance(error, CalcomAuthFailed):
        # Retryable once the operator fixes the key; the producer's retry then books.
        return "calcom_auth_failed"
    if isinstance(error, CalcomInvalidResponse):
        return "calcom_invalid_response"
    if error.status == 429:
        return "calcom_rate_limited"
    if error.status is None:
        return "calcom_timeout" if error.code == "timeout" else "calcom_unreachable"
    return "calcom_unavailable"
