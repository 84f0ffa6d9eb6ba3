"""The appointments projection for replay: a batch of events in a few statements, not one each.

`appointments.apply` is the definition; this is the same fold over the events' JSON data, done
in memory. Rows confirmed in the batch are built and amended in a dict and written at the end
with one COPY (PostgreSQL parses the values, so no model is built per event); cancellations and
reschedules of rows from earlier batches become UPDATEs, run in log order before the COPY.
Events about different bookings commute, so the result is the rows `apply` writes event by
event (tests/integration/test_replay.py checks it against the inline-written table).
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final

from events.models import RecordedEvent
from events.replay_reads import LoggedData
from events.store import Connection
from projections import appointments
from projections.projection import Projection

_TABLES: Final = frozenset({appointments.TABLE, f"{appointments.TABLE}_rebuild"})
_COLUMNS: Final = (
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
    "confirmed_at",
    "updated_at",
)
_UID, _START, _END, _STATUS, _UPDATED = 1, 6, 7, 10, 12
# COPY's text format: these characters are escaped, and \N is NULL.
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _cancel(table: str) -> str:
    return f"""
UPDATE {table} SET status = 'cancelled', updated_at = $2::text::timestamptz
 WHERE booking_uid = $1
"""


def _reschedule(table: str) -> str:
    return f"""
UPDATE {table} SET booking_uid = $2, start_at = $3::text::timestamptz,
       end_at = $4::text::timestamptz, updated_at = $5::text::timestamptz
 WHERE booking_uid = $1
"""


async def replay_batch(connection: Connection, events: Sequence[LoggedData], table: str) -> None:
    """Apply events, in log order, to `appointments` or `appointments_rebuild`."""
    if table not in _TABLES:
        raise ValueError(f"unknown appointments table {table!r}")
    pending: dict[str, list[Any]] = {}
    updates: list[tuple[str, tuple[Any, ...]]] = []
    for event in events:
        d = event.data
        if event.type == "BookingConfirmed":
            if d["booking_uid"] in pending:
                raise appointments.AppointmentExists(d["booking_uid"])
            pending[d["booking_uid"]] = [
                *(d["appointment_id"], d["booking_uid"], d.get("booking_id"), d["call_id"]),
                *(d["attempt_id"], d["event_type_id"], d["start"], d.get("end")),
                *(d["attendee_name"], d.get("attendee_email"), "booked"),
                *(d["confirmed_at"], d["confirmed_at"]),
            ]
        elif event.type == "BookingCancelled":
            row = pending.get(d["booking_uid"])
            if row is None:
                updates.append((_cancel(table), (d["booking_uid"], d["cancelled_at"])))
            else:
                row[_STATUS], row[_UPDATED] = "cancelled", d["cancelled_at"]
        elif event.type == "BookingRescheduled":
            old, new = d["booking_uid"], d["new_booking_uid"]
            row = pending.pop(old, None)
            if row is None:
                args = (old, new, d["start"], d.get("end"), d["rescheduled_at"])
                updates.append((_reschedule(table), args))
                continue
            if new in pending:
                raise appointments.AppointmentExists(new)
            row[_UID], row[_START], row[_END], row[_UPDATED] = (
                new,
                d["start"],
                d.get("end"),
                d["rescheduled_at"],
            )
            pending[new] = row
    await _run_updates(connection, updates)
    if pending:
        await connection.copy_to_table(
            table, source=io.BytesIO(_copy_text(list(pending.values()))), columns=list(_COLUMNS)
        )


def _copy_text(rows: Collection[list[Any]]) -> bytes:
    """Rows in COPY's text format: tab-separated, \\N for NULL, \\ tab LF CR escaped."""
    text = _join(rows, escape=False)
    # Escaping value by value costs more than the rest of the replay together, and a value
    # almost never needs it: check the batch as a whole, and escape only when one does.
    nulls = sum(row.count(None) for row in rows)
    if (
        text.count("\\") == nulls
        and text.count("\t") == len(rows) * (len(_COLUMNS) - 1)
        and text.count("\n") == len(rows)
        and "\r" not in text
    ):
        return text.encode()
    return _join(rows, escape=True).encode()


def _join(rows: Iterable[list[Any]], *, escape: bool) -> str:
    lines = [
        "\t".join(
            [
                "\\N"
                if v is None
                else (v.translate(_ESCAPES) if escape else v)
                if type(v) is str
                else str(v)
                for v in row
            ]
        )
        for row in rows
    ]
    lines.append("")
    return "\n".join(lines)


async def _run_updates(connection: Connection, updates: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run the updates in order, one executemany per run of the same statement."""
    start = 0
    while start < len(updates):
        end = start
        while end < len(updates) and updates[end][0] == updates[start][0]:
            end += 1
        await connection.executemany(updates[start][0], [args for _, args in updates[start:end]])
        start = end


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
    fill_indexes=(appointments.UNIQUE_INDEX,),
    inline=True,
)
