"""Events observed through Cal.com's webhooks that are not changes to an appointment.

Cancellations and reschedules are BookingCancelled and BookingRescheduled (events/booking.py);
these record what Cal.com said was created, and the alarm when it is a booking we never made.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from events.models import Event, register


@register
class CalcomBookingCreatedObserved(Event):
    """Cal.com's BOOKING_CREATED webhook, as it came."""

    type_name = "CalcomBookingCreatedObserved"

    booking_uid: str
    booking_id: int | None = None
    call_id: str | None = None
    attempt_id: uuid.UUID | None = None
    event_type_id: int | None = None
    start: datetime
    end: datetime | None = None
    status: str | None = None
    observed_at: datetime


@register
class UnguardedBookingDetected(Event):
    """Cal.com holds a booking for a call that booking-guard never confirmed nor attempted."""

    type_name = "UnguardedBookingDetected"

    booking_uid: str
    call_id: str
    attempt_id: uuid.UUID | None = None
    start: datetime
    detected_at: datetime


def calcom_booking_stream(booking_uid: str) -> str:
    """The stream holding what Cal.com's webhooks said about one booking."""
    return f"calcom-booking-{booking_uid}"
