"""The appointments projection for replay: the whole log folded in memory, then COPY.

`appointments.apply` is the definition (schema.sql's bg_booking_fact, bg_settle_appointments and
bg_confirm_appointment). Replay's fill folds every event's data, in log order, into Python dicts
that mirror those functions step by step (`Fold`): booking_states' join (the greater status, the
least rescheduled_to, start and end, the latest update) and each appointment settled along its
chain of reschedules whenever a fact touches it. At the end both twins are written with one COPY
each. Sending a function call per event cost a round trip's share and a plpgsql call with
dynamic SQL per event (bench/README.md); the fold costs a few dict operations.
(tests/integration/test_replay.py checks the rows against the inline-written table, and
tests/integration/test_appointment_lifecycle.py every order of a booking's events.)

Most confirmations need no fold: a uid that one confirmation names and nothing else does
("lone") gets its two rows from that event alone, so `AppointmentsReplayer.start` writes them
with one INSERT … SELECT inside PostgreSQL, and the fold reads only the other uids' events.
Both stop at one bound behind the horizon (events/replay_reads.py, `bound`).

`replay_batch`, the same SQL calls per event, remains for the swap's catch-up, which applies
what was appended during the fill on top of the copied twins.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import asyncpg

from events import replay_reads
from events.models import RecordedEvent, model_for
from events.replay_reads import LoggedData
from events.store import Connection, Cursor
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


# Cal.com's status of a uid -> the appointment's (schema.sql, bg_settle_appointments).
_STATUS_RANK: Final = {"pending": 1, "accepted": 2, "cancelled": 3, "rejected": 4}
_APPOINTMENT_STATUS: Final = {
    "pending": "pending",
    "accepted": "booked",
    "cancelled": "cancelled",
    "rejected": "declined",
}
_MAX_DEPTH: Final = 64  # the recursive queries' bound
_FACT_AT: Final = {
    "BookingCancelled": ("cancelled", "cancelled_at"),
    "OrphanBookingCancelled": ("cancelled", "cancelled_at"),
    "BookingAccepted": ("accepted", "accepted_at"),
    "BookingDeclined": ("rejected", "declined_at"),
}
_STATE_COLUMNS: Final = (
    "booking_uid",
    "status",
    "rescheduled_to",
    "start_at",
    "end_at",
    "updated_at",
)
# The projection's read columns, then what only a rebuild writes.
_APPOINTMENT_COLUMNS: Final = (*appointments.COLUMNS, "confirmed_at", "updated_at", "origin_uid")
# Indexes into an appointment's list (the columns above).
_UID, _START, _END, _STATUS, _CONFIRMED, _UPDATED, _ORIGIN = 1, 6, 7, 10, 11, 12, 13


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _least(a: Any, b: Any) -> Any:
    # SQL's LEAST ignores NULLs.
    if a is None:
        return b
    if b is None:
        return a
    return b if b < a else a


class Fold:
    """booking_states and appointments as dicts, changed as schema.sql's functions change them.

    A state is [status, rescheduled_to, start, end, updated_at]; an appointment a list of the
    table's columns. `text_least` decides LEAST of two different rescheduled_to uids: Python's
    order unless the database collates text otherwise (`AppointmentsReplayer` checks).
    """

    def __init__(self) -> None:
        self.states: dict[str, list[Any]] = {}
        self.appointments: dict[str, list[Any]] = {}
        self._by_origin: dict[str, list[str]] = {}
        # uid -> the uids rescheduled to it (booking_states.rescheduled_to, reversed).
        self._rescheduled_from: dict[str, set[str]] = {}
        # Pairs of different rescheduled_to values of one uid, decided by Python's order: the
        # replayer checks them against the database's collation at the end.
        self.text_choices: list[tuple[str, str]] = []

    def event(self, event_type: str, d: dict[str, Any]) -> None:
        if event_type == "BookingConfirmed":
            self.confirm(d)
            return
        if event_type == "BookingRescheduled":
            at = _time(d["rescheduled_at"])
            uid, new = d["booking_uid"], d["new_booking_uid"]
            self.fact(uid, "cancelled", new, None, None, at)
            self.fact(new, "accepted", None, _time(d["start"]), _time(d.get("end")), at)
            return
        known = _FACT_AT.get(event_type)
        if known is not None:
            status, at_field = known
            self.fact(d["booking_uid"], status, None, None, None, _time(d[at_field]))

    def confirm(self, d: dict[str, Any]) -> None:
        # Ids stay the JSON's canonical strings (asyncpg's COPY encodes them as uuid).
        appointment_id = d["appointment_id"]
        if appointment_id in self.appointments:
            raise appointments.AppointmentExists(d["booking_uid"])  # the primary key's refusal
        uid = d["booking_uid"]
        start, end = _time(d["start"]), _time(d.get("end"))
        status = d.get("status", "booked")
        confirmed_at = _time(d["confirmed_at"])
        booking_id = d.get("booking_id")
        row = [
            appointment_id,
            uid,
            None if booking_id is None else int(booking_id),
            d["call_id"],
            d["attempt_id"],
            int(d["event_type_id"]),
            start,
            end,
            d["attendee_name"],
            d.get("attendee_email"),
            status,
            confirmed_at,
            confirmed_at,
            uid,
        ]
        self.appointments[appointment_id] = row
        fact_status = "pending" if status == "pending" else "accepted"
        if uid not in self.states and uid not in self._by_origin:
            # The common case, a uid nothing was said of before: the fact makes its state and
            # the settle leaves the row as inserted but for the status's name (the same steps,
            # taken without walking chains that cannot exist yet).
            self.states[uid] = [fact_status, None, start, end, confirmed_at]
            self._by_origin[uid] = [appointment_id]
            row[_STATUS] = _APPOINTMENT_STATUS[fact_status]
            return
        self._by_origin.setdefault(uid, []).append(appointment_id)
        self.fact(uid, fact_status, None, start, end, confirmed_at)

    def fact(
        self,
        uid: str,
        status: str,
        rescheduled_to: str | None,
        start: datetime | None,
        end: datetime | None,
        at: datetime | None,
    ) -> None:
        state = self.states.get(uid)
        if state is None:
            self.states[uid] = [status, rescheduled_to, start, end, at]
        else:
            if _STATUS_RANK[status] > _STATUS_RANK[state[0]]:
                state[0] = status
            before = state[1]
            if before is not None and rescheduled_to is not None and before != rescheduled_to:
                self.text_choices.append((before, rescheduled_to))
            state[1] = _least(before, rescheduled_to)
            if before != state[1] and before is not None:
                self._rescheduled_from[before].discard(uid)
            state[2] = _least(state[2], start)
            state[3] = _least(state[3], end)
            if at is not None and (state[4] is None or at > state[4]):
                state[4] = at
        target = self.states[uid][1]
        if target is not None:
            self._rescheduled_from.setdefault(target, set()).add(uid)
        self._settle(uid)

    def _settle(self, uid: str) -> None:
        # bg_settle_appointments: every uid whose chain reaches `uid` within 64 steps...
        if not self._rescheduled_from.get(uid):
            for appointment_id in self._by_origin.get(uid, ()):
                self._settle_one(self.appointments[appointment_id])
            return
        back = {uid}
        frontier = [uid]
        for _ in range(_MAX_DEPTH):
            step = [f for u in frontier for f in self._rescheduled_from.get(u, ())]
            if not step:
                break
            back.update(step)
            frontier = step
        for origin in back:
            for appointment_id in self._by_origin.get(origin, ()):
                self._settle_one(self.appointments[appointment_id])

    def _settle_one(self, row: list[Any]) -> None:
        # ...then each appointment takes the last uid of the chain from its origin.
        states = self.states
        chain = [row[_ORIGIN]]
        uid = row[_ORIGIN]
        for _ in range(_MAX_DEPTH):
            state = states.get(uid)
            if state is None or state[1] is None:
                break
            uid = state[1]
            chain.append(uid)
        last = states.get(uid)
        if last is None:
            return  # the UPDATE joins the last uid's state: no row, no change
        updated = [states[u][4] for u in chain if u in states and states[u][4] is not None]
        row[_UID] = uid
        row[_STATUS] = _APPOINTMENT_STATUS[last[0]]
        if last[2] is not None:
            row[_START] = last[2]
        if last[3] is not None:
            row[_END] = last[3]
        newest = max(updated) if updated else None
        row[_UPDATED] = row[_CONFIRMED] if newest is None or newest < row[_CONFIRMED] else newest

    def state_records(self) -> list[tuple[Any, ...]]:
        return [(uid, *state) for uid, state in self.states.items()]

    def appointment_records(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.appointments.values()]


# The split (`AppointmentsReplayer.start`). Events relate booking uids only through
# `booking_uid` (every type) and `new_booking_uid` (BookingRescheduled): the fold's keys. A uid
# that one current-version BookingConfirmed names and nothing else names ("lone") makes one
# booking_states row and one appointment, each a function of that event alone (Fold.confirm's
# fast path: the fact makes the state, the settle renames the status), so PostgreSQL writes
# them itself. Every other uid is "shared" and folded here from its events.
_SHARED_TABLE: Final = "bg_replay_shared"
_SHARED: Final = f"pg_temp.{_SHARED_TABLE}"
_CONFIRMATION: Final = "BookingConfirmed"


def _shared_statement() -> str:
    logged = replay_reads.logged_upto("$1", "$2", "$3")
    return f"""
WITH logged AS NOT MATERIALIZED ({logged}
), named AS MATERIALIZED (
  SELECT l.position, l.type, l.schema_version <> ($4::int[])[array_position($1::text[], l.type)]
           AS older,
         l.data ->> 'booking_uid' AS uid, l.data ->> 'new_booking_uid' AS new_uid
    FROM logged AS l
), shared AS (
  INSERT INTO {_SHARED} (uid)
  SELECT uid FROM (
    SELECT uid, type = '{_CONFIRMATION}' AND NOT older AS confirmation
      FROM named WHERE uid IS NOT NULL
    UNION ALL
    SELECT new_uid, false FROM named WHERE new_uid IS NOT NULL
  ) AS n
  GROUP BY uid HAVING count(*) > 1 OR NOT bool_and(confirmation)
  RETURNING uid
)
SELECT ARRAY(SELECT position FROM named WHERE older ORDER BY position) AS older,
       EXISTS (SELECT FROM named AS n JOIN shared AS s ON s.uid = n.uid
                WHERE n.type = '{_CONFIRMATION}') AS folded
"""


def _lone_statement(table: str, states: str) -> str:
    logged = replay_reads.logged_upto("$1", "$2", "$3")
    return f"""
WITH logged AS NOT MATERIALIZED ({logged}
), lone AS MATERIALIZED (
  SELECT r.appointment_id, r.booking_uid AS uid, r.booking_id, r.call_id, r.attempt_id,
         r.event_type_id, r.start AS start_at, r."end" AS end_at, r.attendee_name,
         r.attendee_email,
         CASE WHEN r.status = 'pending' THEN 'pending' ELSE 'accepted' END AS fact,
         r.confirmed_at
    FROM logged AS l,
         jsonb_to_record(l.data) AS r(appointment_id uuid, booking_uid text, booking_id bigint,
             call_id text, attempt_id uuid, event_type_id bigint, start timestamptz,
             "end" timestamptz, attendee_name text, attendee_email text, status text,
             confirmed_at timestamptz)
   WHERE l.type = '{_CONFIRMATION}' AND l.schema_version = $4
     AND NOT EXISTS (SELECT FROM {_SHARED} AS s WHERE s.uid = r.booking_uid)
), states AS (
  INSERT INTO {states} ({", ".join(_STATE_COLUMNS)})
  SELECT uid, fact, NULL, start_at, end_at, confirmed_at FROM lone
)
INSERT INTO {table} ({", ".join(_APPOINTMENT_COLUMNS)})
SELECT appointment_id, uid, booking_id, call_id, attempt_id, event_type_id, start_at, end_at,
       attendee_name, attendee_email,
       CASE fact WHEN 'pending' THEN 'pending' ELSE 'booked' END,
       confirmed_at, confirmed_at, uid
  FROM lone
"""


class AppointmentsReplayer:
    """One rebuild's fill: the lone confirmations in the server (`start`), the rest folded in
    memory batch by batch, and COPYed into both twins at the end. `in_server=False` folds
    every event (the path before the split, kept for comparison)."""

    def __init__(self, *, in_server: bool = True) -> None:
        self.fold = Fold()
        self.in_server = in_server
        self.lone = 0  # confirmations written in the server by `start`

    async def start(
        self, connection: Connection, types: Sequence[str], table: str, upto: Cursor
    ) -> tuple[int, str, tuple[str, ...]]:
        """Write the lone confirmations up to `upto` into the twins; return how many, the
        condition that keeps, of the events up to `upto`, those left to fold (it names a table
        of this session: read them on `connection`, and `close` it after), and their types
        (BookingConfirmed only if some are left to fold)."""
        if not self.in_server:
            return 0, "", tuple(types)
        states = _states_for(table)
        versions = [model_for(name).schema_version for name in types]
        current = model_for(_CONFIRMATION).schema_version
        async with connection.transaction():
            await connection.execute("SET LOCAL TimeZone = 'UTC'")
            await connection.execute("SET LOCAL synchronous_commit = off")
            await connection.execute(f"CREATE TEMP TABLE {_SHARED_TABLE} (uid text NOT NULL)")
            found = await connection.fetchrow(
                _shared_statement(), list(types), upto.transaction_id, upto.position, versions
            )
            assert found is not None
            older: list[int] = list(found["older"])
            if older:
                # Their upcast data may name uids under other keys than the stored JSON does.
                logged = await replay_reads.read_data_at(connection, older, types)
                named = [
                    uid
                    for event in logged
                    for uid in (event.data.get("booking_uid"), event.data.get("new_booking_uid"))
                    if uid is not None
                ]
                await connection.execute(
                    f"INSERT INTO {_SHARED} (uid) SELECT unnest($1::text[])", named
                )
            await connection.execute(f"ANALYZE {_SHARED}")
            status = await connection.execute(
                _lone_statement(table, states),
                [_CONFIRMATION],
                upto.transaction_id,
                upto.position,
                current,
            )
        lone = self.lone = int(status.split()[-1])
        keep = (
            f"type <> '{_CONFIRMATION}' OR schema_version <> {current}"
            f" OR data ->> 'booking_uid' IN (SELECT uid FROM {_SHARED})"
        )
        if found["folded"] or older:
            return lone, keep, tuple(types)
        # No confirmation is left to fold: their scan is not read again.
        return lone, keep, tuple(t for t in types if t != _CONFIRMATION)

    async def close(self, connection: Connection) -> None:
        """Drop what `start` left in the session."""
        if self.in_server:
            await connection.execute(f"DROP TABLE IF EXISTS {_SHARED}")

    async def batch(self, connection: Connection, events: Sequence[LoggedData], table: str) -> None:
        _states_for(table)
        event = self.fold.event
        for logged in events:
            event(logged.type, logged.data)

    async def finish(self, connection: Connection, table: str) -> None:
        states = _states_for(table)
        fold = self.fold
        if fold.text_choices:
            # LEAST of two uids is the database's collation's; Python's order must agree.
            pairs = list(set(fold.text_choices))
            agreed = await connection.fetchval(
                'SELECT bool_and(LEAST(a, b) = CASE WHEN b < a COLLATE "C" THEN b ELSE a END)'
                " FROM unnest($1::text[], $2::text[]) AS p(a, b)",
                [a for a, _ in pairs],
                [b for _, b in pairs],
            )
            if not agreed:
                raise RuntimeError(
                    "the database collates booking uids unlike Python: replay the appointments"
                    " with replay_batch (SQL) instead"
                )
        await connection.copy_records_to_table(
            states, records=fold.state_records(), columns=_STATE_COLUMNS
        )
        try:
            await connection.copy_records_to_table(
                table, records=fold.appointment_records(), columns=_APPOINTMENT_COLUMNS
            )
        except asyncpg.UniqueViolationError as e:
            raise appointments.AppointmentExists("?") from e


def _states_for(table: str) -> str:
    states = _TABLES.get(table)
    if states is None:
        raise ValueError(f"unknown appointments table {table!r}")
    return states


PROJECTION: Final = Projection(
    name=appointments.NAME,
    types=appointments.HANDLED_TYPES,
    table=appointments.TABLE,
    apply_batch=apply_batch,
    replay_batch=replay_batch,
    replayer=AppointmentsReplayer,
    # The fold writes both twins once with COPY: every index is built after it.
    fill_indexes=(),
    inline=True,
    side_tables=(appointments.STATES,),
)

# The same with every event folded in memory, as before the split: for comparisons (bench,
# tests).
FOLD_ONLY: Final = dataclasses.replace(
    PROJECTION, replayer=functools.partial(AppointmentsReplayer, in_server=False)
)
