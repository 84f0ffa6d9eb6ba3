"""The booking ledger's event types. Every booking event carries `call_id`; every event about a
Cal.com booking carries `booking_uid` (the audit indexes in schema.sql rely on both names)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from events.models import Event, register


class Attendee(BaseModel):
    """The attendee as sent to Cal.com (the address actually used, not the producer's input)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    email: str | None = None
    time_zone: str
    phone_number: str | None = None


class BookingOptions(BaseModel):
    """What else the booking carries to Cal.com: answers to the event type's own questions, a
    length, the attendee's language, guests, a location (empty: none of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    booking_fields: dict[str, Any] = {}
    length_in_minutes: int | None = None
    language: str | None = None
    guests: list[str] = []
    location: str | None = None


@register
class BookingRequested(Event):
    """Intent: recorded before Cal.com is called."""

    type_name = "BookingRequested"

    attempt_id: uuid.UUID
    call_id: str
    event_type_id: int
    start: datetime
    attendee: Attendee
    metadata: dict[str, str] = {}
    idempotency_key: str
    fingerprint: str
    retry_of: uuid.UUID | None = None
    requested_at: datetime
    options: BookingOptions = BookingOptions()


@register
class CalcomBookingReceived(Event):
    """What Cal.com answered to this attempt, kept whole for the audit."""

    type_name = "CalcomBookingReceived"

    attempt_id: uuid.UUID
    call_id: str
    booking_uid: str
    booking_id: int | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    created_at: datetime | None = None
    booking_metadata: dict[str, Any] | None = None
    attendees: list[dict[str, Any]] = []
    first_called_at: datetime
    received_at: datetime
    reconciled: bool = False


@register
class BookingConfirmed(Event):
    """The booking passed every guard: exactly one appointment exists for `booking_uid`."""

    type_name = "BookingConfirmed"

    attempt_id: uuid.UUID
    appointment_id: uuid.UUID
    call_id: str
    booking_uid: str
    booking_id: int | None = None
    event_type_id: int
    start: datetime
    end: datetime | None = None
    attendee_name: str
    attendee_email: str | None = None
    confirmed_at: datetime
    # `pending`: Cal.com holds the booking awaiting the host (pending_confirmation).
    status: Literal["booked", "pending"] = "booked"


@register
class BookingRejected(Event):
    """A guard (or Cal.com itself) refused the booking; no appointment was made."""

    type_name = "BookingRejected"

    attempt_id: uuid.UUID
    call_id: str
    guard: str
    layer: int | None = None
    reason: str
    detail: dict[str, Any] = {}
    booking_uid: str | None = None
    rejected_at: datetime


@register
class BookingFailed(Event):
    """Cal.com could not be asked or did not answer usefully."""

    type_name = "BookingFailed"

    attempt_id: uuid.UUID
    call_id: str
    reason: str
    retryable: bool
    status_code: int | None = None
    message: str = ""
    failed_at: datetime
    # The request may have reached Cal.com (a timeout, a dropped answer, a 5xx after sending):
    # the reconciler looks for a booking of this attempt before anything is forgotten.
    maybe_written: bool = False


@register
class BookingCancelled(Event):
    """Cal.com reported the booking cancelled (webhook)."""

    type_name = "BookingCancelled"

    booking_uid: str
    call_id: str | None = None
    reason: str | None = None
    cancelled_at: datetime


@register
class BookingRescheduled(Event):
    """Cal.com moved the booking: a new uid replaces the old one (webhook)."""

    type_name = "BookingRescheduled"

    booking_uid: str
    new_booking_uid: str
    call_id: str | None = None
    start: datetime
    end: datetime | None = None
    rescheduled_at: datetime


@register
class BookingAlreadyHeld(Event):
    """The call already holds an appointment for this event type and start: answered with it,
    before (or instead of) asking Cal.com again. An outcome, neither a booking nor a refusal."""

    type_name = "BookingAlreadyHeld"

    attempt_id: uuid.UUID
    call_id: str
    appointment_id: uuid.UUID
    booking_uid: str
    held_at: datetime


@register
class BookingAccepted(Event):
    """Cal.com holds the booking as accepted: a host confirmed a pending request (read back)."""

    type_name = "BookingAccepted"

    booking_uid: str
    call_id: str | None = None
    accepted_at: datetime


@register
class BookingDeclined(Event):
    """Cal.com holds the booking as rejected: the host declined the request (read back)."""

    type_name = "BookingDeclined"

    booking_uid: str
    call_id: str | None = None
    reason: str | None = None
    declined_at: datetime


@register
class OrphanBookingCancelled(Event):
    """A booking of ours that no producer was told of (or that a guard refused) was cancelled
    in Cal.com, so no host is blocked and no attendee waits for a booking nobody holds."""

    type_name = "OrphanBookingCancelled"

    booking_uid: str
    attempt_id: uuid.UUID
    call_id: str
    reason: str
    cancelled_at: datetime


@register
class OrphanBookingDetected(Event):
    """A booking of ours that no producer holds, left live because the orphan policy is `alert`."""

    type_name = "OrphanBookingDetected"

    booking_uid: str
    attempt_id: uuid.UUID
    call_id: str
    reason: str
    detected_at: datetime


@register
class AttemptParked(Event):
    """Recovery gave up on an attempt after this many tries; an operator resumes it."""

    type_name = "AttemptParked"

    attempt_id: uuid.UUID
    call_id: str
    idempotency_key: str
    recovery_tries: int
    parked_at: datetime


@register
class AttemptResumed(Event):
    """An operator handed a parked attempt back to recovery (`booking-guard attempts resume`)."""

    type_name = "AttemptResumed"

    attempt_id: uuid.UUID
    call_id: str
    resumed_at: datetime


OUTCOME_TYPES = ("BookingConfirmed", "BookingRejected", "BookingFailed", "BookingAlreadyHeld")


def attempt_stream(attempt_id: uuid.UUID) -> str:
    """The stream holding one booking attempt's events."""
    return f"attempt-{attempt_id}"
