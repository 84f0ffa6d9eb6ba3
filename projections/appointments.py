"""The appointments read model: one row per Cal.com booking that passed every guard.

`apply` is the one place that turns events into rows. The booking workflow calls it inline, in
the transaction that appends BookingConfirmed (so the unique index on booking_uid refuses a
second appointment before the confirmation can land); replay calls it for every event of the
log into a fresh table. Every value comes from the event, never from the clock, so a rebuild is
byte-identical.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import asyncpg

from events.booking import BookingCancelled, BookingConfirmed, BookingRescheduled
from events.models import Event
from events.store import Executor

NAME: Final = "appointments"
TABLE: Final = "appointments"
HANDLED_TYPES: Final = ("BookingConfirmed", "BookingCancelled", "BookingRescheduled")
UNIQUE_INDEX: Final = "appointments_booking_uid_key"

# Table names are never input: only these may be formatted into the statements below.
_TABLES: Final = frozenset({TABLE, f"{TABLE}_rebuild"})


def insert_statement(table: str = TABLE, *, first: int = 1) -> str:
    """The INSERT of a confirmed appointment; its parameters ($first onwards) are
    `confirmed_values(event)`. `first` lets a larger statement embed it."""
    p = [f"${n}" for n in range(first, first + 11)]
    return f"""
INSERT INTO {table} (appointment_id, booking_uid, booking_id, call_id, attempt_id, event_type_id,
                     start_at, end_at, attendee_name, attendee_email, status, confirmed_at,
                     updated_at)
VALUES ({", ".join(p[:10])}, 'booked', {p[10]}, {p[10]})
"""


def confirmed_values(event: BookingConfirmed) -> tuple[Any, ...]:
    """The parameters of `insert_statement` for one confirmation."""
    return (
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


def _cancel(table: str) -> str:
    return f"UPDATE {table} SET status = 'cancelled', updated_at = $2 WHERE booking_uid = $1"


def _reschedule(table: str) -> str:
    return f"""
UPDATE {table} SET booking_uid = $2, start_at = $3, end_at = $4, updated_at = $5
 WHERE booking_uid = $1
"""


class AppointmentExists(Exception):
    """The unique index refused a second appointment for one Cal.com booking (layer 4)."""

    def __init__(self, booking_uid: str) -> None:
        super().__init__(f"an appointment for Cal.com booking {booking_uid!r} already exists")
        self.booking_uid = booking_uid


async def apply(connection: Executor, event: Event, *, table: str = TABLE) -> None:
    """Apply one event to the appointments table (or its rebuild twin)."""
    if table not in _TABLES:
        raise ValueError(f"unknown appointments table {table!r}")
    match event:
        case BookingConfirmed():
            await _insert_confirmed(connection, event, table)
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


async def _insert_confirmed(connection: Executor, event: BookingConfirmed, table: str) -> None:
    try:
        await connection.execute(insert_statement(table), *confirmed_values(event))
    except asyncpg.UniqueViolationError as e:
        if e.constraint_name in (UNIQUE_INDEX, f"{table}_booking_uid_key"):
            raise AppointmentExists(event.booking_uid) from e
        raise


_COLUMNS = (
    "appointment_id, booking_uid, booking_id, call_id, attempt_id, event_type_id, start_at,"
    " end_at, attendee_name, attendee_email, status"
)
_BY_ID = f"SELECT {_COLUMNS} FROM appointments WHERE appointment_id = $1"
_BY_BOOKING_UID = f"SELECT {_COLUMNS} FROM appointments WHERE booking_uid = $1"
_BY_ATTEMPT = f"SELECT {_COLUMNS} FROM appointments WHERE attempt_id = $1"
_LIST = f"""
SELECT {_COLUMNS} FROM appointments
 WHERE ($1::text IS NULL OR call_id = $1)
   AND ($2::timestamptz IS NULL OR start_at >= $2)
   AND ($3::timestamptz IS NULL OR start_at < $3)
   AND (start_at, appointment_id) > ($4::timestamptz, $5::uuid)
 ORDER BY start_at, appointment_id
 LIMIT $6
"""
_EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")
_NIL = uuid.UUID(int=0)


async def get(executor: Executor, appointment_id: uuid.UUID) -> dict[str, Any] | None:
    """One appointment by id."""
    row = await executor.fetchrow(_BY_ID, appointment_id)
    return None if row is None else dict(row)


async def by_booking_uid(executor: Executor, booking_uid: str) -> dict[str, Any] | None:
    """The appointment holding a Cal.com booking, if any."""
    row = await executor.fetchrow(_BY_BOOKING_UID, booking_uid)
    return None if row is None else dict(row)


async def by_attempt(executor: Executor, attempt_id: uuid.UUID) -> dict[str, Any] | None:
    """The appointment an attempt made, if any."""
    row = await executor.fetchrow(_BY_ATTEMPT, attempt_id)
    return None if row is None else dict(row)


async def search(
    executor: Executor,
    *,
    call_id: str | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Appointments by call and start range, in start order, keyset-paginated by `after`."""
    after_start, after_id = after if after is not None else (_EPOCH, _NIL)
    rows = await executor.fetch(_LIST, call_id, start_from, start_to, after_start, after_id, limit)
    return [dict(row) for row in rows]
