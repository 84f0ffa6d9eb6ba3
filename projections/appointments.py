"""The appointments read model: one row per Cal.com booking of ours, following Cal.com.

An appointment is pending (awaiting the host), booked, cancelled or declined; a reschedule moves
it to the new uid. What Cal.com said of each uid is folded into `booking_states` by
`bg_booking_fact` (schema.sql) with a join that ignores order, and the appointment is settled
from it, so webhooks that arrive late, twice or before the confirmation they concern end in the
same row (STYLE.md 22; tests/integration/test_appointment_lifecycle.py permutes them).

`apply` is the one place that turns events into rows. The booking workflow writes a
confirmation inline, in the transaction that appends BookingConfirmed (so the unique index on
booking_uid refuses a second appointment before the confirmation can land); Cal.com's changes
are applied in the transaction that appends them; replay applies every event of the log to the
twins of both tables. Every value comes from the events, never from the clock, so a rebuild is
byte-identical.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import asyncpg

from events.booking import (
    BookingAccepted,
    BookingCancelled,
    BookingConfirmed,
    BookingDeclined,
    BookingRescheduled,
    OrphanBookingCancelled,
)
from events.models import Event
from events.store import Executor

NAME: Final = "appointments"
TABLE: Final = "appointments"
STATES: Final = "booking_states"
HANDLED_TYPES: Final = (
    "BookingConfirmed",
    "BookingCancelled",
    "BookingRescheduled",
    "BookingAccepted",
    "BookingDeclined",
    "OrphanBookingCancelled",
)
UNIQUE_INDEX: Final = "appointments_booking_uid_key"
LIVE: Final = ("pending", "booked")

# Table names are never input: only these may be passed to the functions below.
_TABLES: Final = {TABLE: STATES, f"{TABLE}_rebuild": f"{STATES}_rebuild"}

_FACT = "SELECT bg_booking_fact($1, $2, $3, $4, $5, $6, $7, $8)"


def insert_statement(table: str = TABLE, *, first: int = 1) -> str:
    """The statement recording a confirmed appointment; its parameters ($first onwards) are
    `confirmed_values(event)`. `first` lets a larger statement embed it."""
    states = _states_of(table)
    p = ", ".join(f"${n}" for n in range(first, first + 12))
    return f"SELECT bg_confirm_appointment('{states}', '{table}', {p})"


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
        event.status,
        event.confirmed_at,
    )


def facts(
    event: Event,
) -> list[tuple[str, str, str | None, datetime | None, datetime | None, datetime]]:
    """What an event states about booking uids: (uid, status, rescheduled_to, start, end, at)."""
    match event:
        case BookingCancelled():
            return [(event.booking_uid, "cancelled", None, None, None, event.cancelled_at)]
        case OrphanBookingCancelled():
            return [(event.booking_uid, "cancelled", None, None, None, event.cancelled_at)]
        case BookingAccepted():
            return [(event.booking_uid, "accepted", None, None, None, event.accepted_at)]
        case BookingDeclined():
            return [(event.booking_uid, "rejected", None, None, None, event.declined_at)]
        case BookingRescheduled():
            # Cal.com cancels the old booking and makes a new, accepted one (contracts README).
            at = event.rescheduled_at
            return [
                (event.booking_uid, "cancelled", event.new_booking_uid, None, None, at),
                (event.new_booking_uid, "accepted", None, event.start, event.end, at),
            ]
        case _:
            return []


class AppointmentExists(Exception):
    """The unique index refused a second appointment for one Cal.com booking (layer 4)."""

    def __init__(self, booking_uid: str) -> None:
        super().__init__(f"an appointment for Cal.com booking {booking_uid!r} already exists")
        self.booking_uid = booking_uid


def _states_of(table: str) -> str:
    try:
        return _TABLES[table]
    except KeyError:
        raise ValueError(f"unknown appointments table {table!r}") from None


async def apply(connection: Executor, event: Event, *, table: str = TABLE) -> None:
    """Apply one event to the appointments table (or its rebuild twin) and its states."""
    states = _states_of(table)
    try:
        if isinstance(event, BookingConfirmed):
            await connection.execute(insert_statement(table), *confirmed_values(event))
            return
        for fact in facts(event):
            await connection.execute(_FACT, states, table, *fact)
    except asyncpg.UniqueViolationError as e:
        if e.constraint_name in (UNIQUE_INDEX, f"{table}_booking_uid_key"):
            raise AppointmentExists(getattr(event, "booking_uid", "?")) from e
        raise


COLUMNS: Final = (
    "appointment_id",
    "booking_uid",
    "booking_id",
    "call_id",
    "attempt_id",
    "event_type_id",
    "start_at",
    "end_at",
    "attendee_name",
    "attendee_email",
    "status",
)
_COLUMNS = ", ".join(COLUMNS)


def held_by_call_statement(*, first: int = 1) -> str:
    """The call's live appointment for an event type and start: parameters $first (call id),
    $first+1 (event type), $first+2 (start). `first` lets a larger statement embed it."""
    c, e, s = (f"${n}" for n in range(first, first + 3))
    return f"""
SELECT {_COLUMNS} FROM appointments
 WHERE call_id = {c} AND event_type_id = {e} AND start_at = {s}
   AND status IN ('pending', 'booked')
 ORDER BY confirmed_at
 LIMIT 1
"""


_HELD_BY_CALL = held_by_call_statement()
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


_COUNT = "SELECT count(*) FROM appointments"


async def count(executor: Executor) -> int:
    """How many appointments there are, in every status."""
    n: int = await executor.fetchval(_COUNT)
    return n


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


async def held_by_call(
    executor: Executor, call_id: str, event_type_id: int, start: datetime
) -> dict[str, Any] | None:
    """The call's live (pending or booked) appointment for this event type and start, if any."""
    row = await executor.fetchrow(_HELD_BY_CALL, call_id, event_type_id, start)
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
