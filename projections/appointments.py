"""The appointments read model: one row per Cal.com booking that passed every guard.

`apply` is the one place that turns events into rows. The booking workflow calls it inline, in
the transaction that appends BookingConfirmed (so the unique index on booking_uid refuses a
second appointment before the confirmation can land); replay calls it for every event of the
log into a fresh table. Every value comes from the event, never from the clock, so a rebuild is
byte-identical.
"""

from __future__ import annotations

from typing import Final

from events.booking import BookingCancelled, BookingConfirmed, BookingRescheduled
from events.models import Event
from events.store import Connection

NAME: Final = "appointments"
TABLE: Final = "appointments"
HANDLED_TYPES: Final = ("BookingConfirmed", "BookingCancelled", "BookingRescheduled")
UNIQUE_INDEX: Final = "appointments_booking_uid_key"

# Table names are never input: only these may be formatted into the statements below.
_TABLES: Final = frozenset({TABLE, f"{TABLE}_rebuild"})


def _insert(table: str) -> str:
    return f"""
INSERT INTO {table} (appointment_id, booking_uid, booking_id, call_id, attempt_id, event_type_id,
                     start_at, end_at, attendee_name, attendee_email, status, confirmed_at,
                     updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'booked', $11, $11)
"""


def _cancel(table: str) -> str:
    return f"UPDATE {table} SET status = 'cancelled', updated_at = $2 WHERE booking_uid = $1"


def _reschedule(table: str) -> str:
    return f"""
UPDATE {table} SET booking_uid = $2, start_at = $3, end_at = $4, updated_at = $5
 WHERE booking_uid = $1
"""


async def apply(connection: Connection, event: Event, *, table: str = TABLE) -> None:
    """Apply one event to the appointments table (or its rebuild twin)."""
    if table not in _TABLES:
        raise ValueError(f"unknown appointments table {table!r}")
    match event:
        case BookingConfirmed():
            await connection.execute(
                _insert(table),
                event.appointment_id,
                event.booking_uid,
                event.booking_id,
                event.call_id,
                event.attempt_id,
                event.event_type_id,
                event.start,
                event.end,
                event.attendee_name,
                event.attendee_email,
                event.confirmed_at,
            )
        case BookingCancelled():
            await connection.execute(_cancel(table), event.booking_uid, event.cancelled_at)
        case BookingRescheduled():
            await connection.execute(
                _reschedule(table),
                event.booking_uid,
                event.new_booking_uid,
                event.start,
                event.end,
                event.rescheduled_at,
            )
        case _:
            pass
