"""The appointments projection for replay: the log's events as runs of one statement each.

`appointments.apply` is the definition; this sends the same SQL functions from the events' JSON
data, without building a model per event, one `executemany` per run of the same statement. The
fold in booking_states is order-independent, so the rows are those `apply` writes event by event
(tests/integration/test_replay.py checks it against the inline-written table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from events.models import RecordedEvent
from events.replay_reads import LoggedData
from events.store import Connection
from projections import appointments
from projections.projection import Projection

_TABLES: Final = {appointments.TABLE: appointments.STATES}
_TABLES[f"{appointments.TABLE}_rebuild"] = f"{appointments.STATES}_rebuild"

# Text parameters, cast in SQL: the JSON data's strings go through as they are.
_CONFIRM: Final = """
SELECT bg_confirm_appointment($1, $2, $3::text::uuid, $4, $5::text::bigint, $6,
       $7::text::uuid, $8::text::bigint, $9::text::timestamptz, $10::text::timestamptz, $11,
       $12, $13, $14::text::timestamptz)
"""
_FACT: Final = """
SELECT bg_booking_fact($1, $2, $3, $4, $5, $6::text::timestamptz, $7::text::timestamptz,
       $8::text::timestamptz)
"""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _statements(event: LoggedData, table: str, states: str) -> list[tuple[str, tuple[Any, ...]]]:
    d = event.data
    if event.type == "BookingConfirmed":
        args = (
            *(states, table, d["appointment_id"], d["booking_uid"], _text(d.get("booking_id"))),
            *(d["call_id"], d["attempt_id"], _text(d["event_type_id"]), d["start"], d.get("end")),
            *(d["attendee_name"], d.get("attendee_email"), d.get("status", "booked")),
            d["confirmed_at"],
        )
        return [(_CONFIRM, args)]
    at = {
        "BookingCancelled": "cancelled_at",
        "OrphanBookingCancelled": "cancelled_at",
        "BookingAccepted": "accepted_at",
        "BookingDeclined": "declined_at",
        "BookingRescheduled": "rescheduled_at",
    }.get(event.type)
    if at is None:
        return []
    uid = d["booking_uid"]
    if event.type == "BookingRescheduled":
        new = d["new_booking_uid"]
        return [
            (_FACT, (states, table, uid, "cancelled", new, None, None, d[at])),
            (_FACT, (states, table, new, "accepted", None, d["start"], d.get("end"), d[at])),
        ]
    status = {"BookingAccepted": "accepted", "BookingDeclined": "rejected"}.get(
        event.type, "cancelled"
    )
    return [(_FACT, (states, table, uid, status, None, None, None, d[at]))]


async def replay_batch(connection: Connection, events: Sequence[LoggedData], table: str) -> None:
    """Apply events, in log order, to `appointments` or `appointments_rebuild`."""
    states = _TABLES.get(table)
    if states is None:
        raise ValueError(f"unknown appointments table {table!r}")
    runs: list[tuple[str, list[tuple[Any, ...]]]] = []
    for event in events:
        for statement, args in _statements(event, table, states):
            if runs and runs[-1][0] == statement:
                runs[-1][1].append(args)
            else:
                runs.append((statement, [args]))
    for statement, rows in runs:
        await connection.executemany(statement, rows)


async def apply_batch(connection: Connection, events: Sequence[RecordedEvent], table: str) -> None:
    """Apply events one by one with `appointments.apply` (the inline definition)."""
    for recorded in events:
        await appointments.apply(connection, recorded.event, table=table)


PROJECTION: Final = Projection(
    name=appointments.NAME,
    types=appointments.HANDLED_TYPES,
    table=appointments.TABLE,
    apply_batch=apply_batch,
    replay_batch=replay_batch,
    # The settle step looks appointments up by origin and states by uid as it goes.
    fill_indexes=None,
    inline=True,
    side_tables=(appointments.STATES,),
)
