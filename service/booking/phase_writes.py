"""The two writes of a booking attempt, each one statement and so one round trip.

Phase 1 claims the idempotency key and appends BookingRequested; phase 3 appends the outcome
events, inserts the appointment of a confirmation and stores the key's answer. Each is a single
statement in its own implicit transaction, so it is atomic without BEGIN and COMMIT: what a
transaction around separate statements cost was most of an attempt's round trips (10 → 4,
bench/README.md). Either phase writes all of its rows or none. The appends in them are the
store's, embedded through its public API (`start_stream_statement`, `append_statement`), so the
rows and checks are those of `EventStore.append`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from events.booking import BookingConfirmed
from events.errors import DATABASE_ERRORS
from events.store import (
    EncodedEvent,
    append_arguments,
    append_error,
    append_statement,
    start_stream_arguments,
    start_stream_statement,
)
from projections import appointments
from service.booking import idempotency

# The intent is the first event of a new stream (the attempt's id is new), written only when
# the key was claimed. The same statement reads the call's own live appointment for the slot
# (workflow.py answers with it instead of booking again): one round trip for both. Every CTE
# reads the snapshot the statement started with, so `held` never sees this statement's rows.
_CLAIM = f"""
WITH claimed AS (
{idempotency.INSERT_KEY.strip()}
), intent AS (
{start_stream_statement(first=6, once_per="claimed").strip()}
), held AS (
{appointments.held_by_call_statement(first=12).strip()}
)
SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, held.*
  FROM (SELECT 1) AS one LEFT JOIN held ON true
"""

# The append fails when another process (recovery) recorded this attempt's outcome first,
# which undoes the whole statement: the key's answer and the appointment too.
_APPEND_AND_ANSWER = f"""
WITH appended AS (
    {append_statement(first=1)}
), answered AS (
    UPDATE idempotency_keys
       SET status = $10, response_body = $11, finished_at = $12,
           reconcile_after = $13::timestamptz
     WHERE key = $8 AND attempt_id = $9
    RETURNING 1
)"""

_RECORD = f"""{_APPEND_AND_ANSWER}
SELECT version FROM appended
"""

# A SELECT in WITH runs only when the main query reads it: `appointment` is read, so the
# confirmation's function (the row and its fact, schema.sql) runs in this statement.
_RECORD_CONFIRMED = f"""{_APPEND_AND_ANSWER}, appointment AS (
    {appointments.insert_statement(first=14).strip()} AS done
)
SELECT version FROM appended, appointment
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """What the claim statement did and saw."""

    # The key was new: it and the intent are written.
    claimed: bool
    # The call's live appointment for this event type and start as the statement began, if any.
    held: dict[str, Any] | None


async def claim(
    pool: asyncpg.Pool,
    key: str,
    *,
    fingerprint: str,
    attempt_id: uuid.UUID,
    holder: str,
    now: datetime,
    stream_id: str,
    intent: EncodedEvent,
    call_id: str,
    event_type_id: int,
    start: datetime,
) -> Claim:
    """Claim a new key and append its intent (nothing written when the key exists), and read
    the call's own live appointment for the slot, in one statement."""
    args = [key, fingerprint, attempt_id, holder, now, *start_stream_arguments(stream_id, intent)]
    args += [call_id, event_type_id, start]
    try:
        row = await pool.fetchrow(_CLAIM, *args)
    except DATABASE_ERRORS as e:
        raise append_error(e, stream_id, 0) from e
    assert row is not None  # the statement always returns its one row
    held = None
    if row["appointment_id"] is not None:
        held = {column: row[column] for column in appointments.COLUMNS}
    return Claim(claimed=bool(row["claimed"]), held=held)


async def record(
    pool: asyncpg.Pool,
    *,
    stream_id: str,
    expected_version: int,
    events: Sequence[EncodedEvent],
    key: str,
    attempt_id: uuid.UUID,
    key_status: str,
    response_body: dict[str, Any],
    now: datetime,
    confirmed: BookingConfirmed | None = None,
    reconcile_at: datetime | None = None,
) -> int:
    """Append the outcome, store the key's answer and, for a confirmation, insert the
    appointment; return the stream's new version.

    Raises AppointmentExists when the unique index refuses the appointment (layer 4) and
    WrongExpectedVersion when the stream moved on; either way nothing was written.
    """
    args = append_arguments(stream_id, events, expected_version=expected_version)
    args += [key, attempt_id, key_status, response_body, now, reconcile_at]
    statement = _RECORD
    if confirmed is not None:
        statement = _RECORD_CONFIRMED
        args += appointments.confirmed_values(confirmed)
    try:
        version: int = await pool.fetchval(statement, *args)
    except DATABASE_ERRORS as e:
        if (
            confirmed is not None
            and isinstance(e, asyncpg.UniqueViolationError)
            and e.constraint_name == appointments.UNIQUE_INDEX
        ):
            raise appointments.AppointmentExists(confirmed.booking_uid) from e
        raise append_error(e, stream_id, expected_version) from e
    return version
