"""Events as lines of a timeline: when, what, which call, the outcome, the guard and the reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events.booking import (
    BookingCancelled,
    BookingConfirmed,
    BookingFailed,
    BookingRejected,
    BookingRequested,
    BookingRescheduled,
    CalcomBookingReceived,
)
from events.models import RecordedEvent


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event, summarised for a person reading an incident."""

    at: datetime
    event: str
    call_id: str | None
    outcome: str
    guard: str = ""
    reason: str = ""
    note: str = ""


def utc_ms(moment: datetime) -> str:
    """`2025-03-01 09:10:00.123Z`: guards compare times to the millisecond, so people see them."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else utc_ms(moment)


def _readable(value: Any) -> str:
    """A value of an event's JSON as words, never a Python repr (`{'a': 1}`, `None`, `True`)."""
    match value:
        case None:
            return "-"
        case bool():
            return "yes" if value else "no"
        case float():
            return f"{value:g}"
        case str() if "T" in value and value[:4].isdigit():
            try:
                return utc_ms(datetime.fromisoformat(value))
            except ValueError:
                return value
        case dict():
            return ", ".join(f"{key} {_readable(item)}" for key, item in value.items())
        case list() | tuple():
            return ", ".join(_readable(item) for item in value)
        case _:
            return str(value)


def readable_detail(detail: dict[str, Any]) -> str:
    """A guard's detail as a phrase: `created at 2025-03-01 09:10:00.000Z, age 2100 s`."""
    parts = []
    for key, value in detail.items():
        words = key.removesuffix("_seconds").replace("_", " ")
        unit = " s" if key.endswith("_seconds") else ""
        parts.append(f"{words} {_readable(value)}{unit}")
    return ", ".join(parts)


def entry_of(recorded: RecordedEvent) -> TimelineEntry:
    """The timeline line of one event; the time is the event's own, else when it was recorded."""
    at, outcome, guard, reason, note = _summary(recorded)
    call_id = getattr(recorded.event, "call_id", None)
    return TimelineEntry(at, recorded.type, call_id, outcome, guard, reason, note)


def _summary(recorded: RecordedEvent) -> tuple[datetime, str, str, str, str]:
    match recorded.event:
        case BookingRequested() as e:
            who = e.attendee.email or e.attendee.phone_number or e.attendee.name
            return e.requested_at, "requested", "", "", f"slot {_when(e.start)} for {who}"
        case CalcomBookingReceived() as e:
            owner = (e.booking_metadata or {}).get("call_id", "-")
            note = f"uid {e.booking_uid} created {_when(e.created_at)} by call {owner}"
            return e.received_at, "cal.com answered", "", "", note
        case BookingConfirmed() as e:
            note = f"appointment {e.appointment_id} for uid {e.booking_uid}"
            return e.confirmed_at, "confirmed", "", "", note
        case BookingRejected() as e:
            guard = e.guard if e.layer is None else f"{e.guard} (layer {e.layer})"
            return e.rejected_at, "rejected", guard, e.reason, readable_detail(e.detail)
        case BookingFailed() as e:
            outcome = "failed, retryable" if e.retryable else "failed"
            return e.failed_at, outcome, "", e.reason, e.message
        case BookingCancelled() as e:
            return e.cancelled_at, "cancelled", "", e.reason or "", f"uid {e.booking_uid}"
        case BookingRescheduled() as e:
            note = f"uid {e.booking_uid} -> {e.new_booking_uid} at {_when(e.start)}"
            return e.rescheduled_at, "rescheduled", "", "", note
        case _:
            return recorded.recorded_at, "", "", "", ""
