"""Outcomes of booking attempts: what the producer is told, derived from the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from events.booking import BookingConfirmed, BookingFailed, BookingRejected
from events.models import Event
from projections import appointments
from service.booking.models import Appointment, AttemptOutcome
from service.calcom.port import CalcomError, CalcomInvalidResponse


async def outcome_from_events(
    pool: asyncpg.Pool, attempt_id: uuid.UUID, events: Sequence[Event]
) -> AttemptOutcome:
    """The outcome of an attempt from its stream's events; `pending` without one."""
    for event in reversed(events):
        match event:
            case BookingConfirmed():
                row = await appointments.get(pool, event.appointment_id)
                return AttemptOutcome(
                    attempt_id=attempt_id,
                    status="confirmed",
                    appointment=appointment_from_row(row) if row else appointment_from(event),
                    status_code=201,
                )
            case BookingRejected(reason="already_confirmed_for_call"):
                row = await appointments.by_booking_uid(pool, event.booking_uid or "")
                return AttemptOutcome(
                    attempt_id=attempt_id,
                    status="confirmed",
                    appointment=appointment_from_row(row) if row else None,
                    status_code=200,
                )
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
        status="booked",
    )


def appointment_from_row(row: dict[str, Any]) -> Appointment:
    return Appointment.model_validate({**row, "start": row["start_at"], "end": row["end_at"]})


def rejected_outcome(attempt_id: uuid.UUID, rejected: BookingRejected) -> AttemptOutcome:
    return AttemptOutcome(
        attempt_id=attempt_id,
        status="rejected",
        reason=rejected.reason,
        guard=rejected.guard,
        detail=rejected.detail,
        status_code=409,
    )


def failure_reason(error: CalcomError, *, retryable: bool) -> str:
    if not retryable:
        return "calcom_rejected_request"
    if isinstance(error, CalcomInvalidResponse):
        return "calcom_invalid_response"
    if error.status == 429:
        return "calcom_rate_limited"
    if error.status is None:
        return "calcom_timeout" if error.code == "timeout" else "calcom_unreachable"
    return "calcom_unavailable"


def failure_status(error: CalcomError, *, retryable: bool) -> int:
    if not retryable:
        return 422
    if error.status == 429:
        return 503
    if error.status is None and error.code == "timeout":
        return 504
    return 502
