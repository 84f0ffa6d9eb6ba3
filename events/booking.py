"""The booking ledger's event types. Every booking event carries `call_id`; every event about a
Cal.com booking carries `booking_uid` (the audit indexes in schema.sql rely on both names)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

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


OUTCOME_TYPES = ("BookingConfirmed", "BookingRejected", "BookingFailed")


def attempt_stream(attempt_id: uuid.UUID) -> str:
    """The stream holding one booking attempt's events."""
    return f"attempt-{attempt_id}"
