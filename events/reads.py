"""Reading the global order: every read of "events after this cursor", behind the horizon.

This module (with events/replay_reads.py and events/counts.py beside it) is the only code that
spells the transaction horizon or selects events by cursor. The projector runner, replay, the
audit queries and /metrics call these functions; none of them reads the `events` table itself.

The transaction horizon
-----------------------
A subscriber that reads "position > checkpoint" can skip an event: positions are taken when a
row is inserted, not when its transaction commits, so a transaction holding position 7 may
commit after one holding position 8 has been read. Serialising every append (a table lock, a
counter row) closes that hole at a large cost to throughput; waiting for gaps with a timeout
(old Marten) skips events under load.

We do neither. Every row records its writing transaction (`xid8`, `pg_current_xact_id()`), and
`read_all` returns only rows whose transaction is older than every transaction still running
(`pg_snapshot_xmin(pg_current_snapshot())`), ordered by (transaction id, position). Once a
transaction id is below the horizon no new row can appear beneath it, so a checkpoint taken as
the pair (transaction id, position) never passes an event that is yet to commit. The price: a
transaction left open anywhere holds every subscriber back, which is why the pool sets
`idle_in_transaction_session_timeout` and `/ready` reports the oldest open transaction.

Every other read here that pages through the global order (the audit queries, replay's batches)
reads behind the same horizon, in the same order, for the same reason.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator, Sequence
from typing import Any, NamedTuple

import asyncpg

from events.database import Connection, Executor
from events.models import (
    EventMetadata,
    RecordedEvent,
    stored_decoder,
    validate_stored,
)


class Cursor(NamedTuple):
    """A place in the global order: after the event at (transaction_id, position)."""

    transaction_id: int
    position: int

    def __str__(self) -> str:
        return f"{self.transaction_id}.{self.position}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """Read a cursor written by `str(cursor)`; "0" means the start."""
        if text == "0":
            return START
        transaction_id, sep, position = text.partition(".")
        # ASCII digits only (str.isdigit() takes "²"), and within the columns' ranges (xid8,
        # bigint): asyncpg refuses larger integers with an error that is no caller's fault.
        if not sep or not _is_number(transaction_id, 2**64) or not _is_number(position, 2**63):
            raise ValueError(f"a cursor looks like '<transaction>.<position>', got {text[:60]!r}")
        return cls(int(transaction_id), int(position))


def _is_number(text: str, limit: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 20 and int(text) < limit


START = Cursor(0, 0)


# data and metadata as text: pydantic parses and validates each in one pass
# (`model_validate_json`), which is faster than the jsonb codec's orjson parse followed by
# validation of the Python values (bench/README.md, issue 16 item 6).
COLUMNS = (
    "position, transaction_id, stream_id, version, event_id, type, schema_version,"
    " data::text AS data, metadata::text AS metadata, recorded_at"
)


def to_recorded(rows: Sequence[asyncpg.Record]) -> list[RecordedEvent]:
    """Turn `events` rows (as `COLUMNS` selects them) into RecordedEvents, upcasting old schema
    versions. The events of a call share their metadata, so each distinct value in the rows is
    parsed once and its (frozen) model shared, as events/replay_reads.py does."""
    # A page of 1,000 events is some 12,000 new container objects, all alive until the page is
    # returned. With the cyclic collector on, it ran every ~700 of them and kept walking the
    # page's survivors (and, as they were promoted, the whole heap): half of read_all's time
    # (bench/README.md, issue 16 item 6). None of these objects can form a cycle, so
    # collection waits until the page is built: deferred, not skipped. No await in here, so no
    # other coroutine runs meanwhile; a thread that allocates in these few ms only waits too.
    # (The first collection after the page still walks it, ~2 ms a page. Moving the page to
    # the oldest generation with gc.freeze()/unfreeze() saved that, and stopped the process's
    # automatic collection of cycles altogether, since freezing resets the generations' counts:
    # tried and reverted, bench/README.md issue 16 item 6.)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _to_recorded(rows)
    finally:
        if enabled:
            gc.enable()


def _to_recorded(rows: Sequence[asyncpg.Record]) -> list[RecordedEvent]:
    metadata: dict[str, EventMetadata] = {}
    recorded: list[RecordedEvent] = []
    append = recorded.append
    for row in rows:
        # Unpacked in one step rather than looked up by name ten times: this loop runs per event.
        (
            position,
            transaction_id,
            stream_id,
            version,
            event_id,
            type_name,
            schema_version,
            data,
            meta_text,
            recorded_at,
        ) = row
        meta = metadata.get(meta_text)
        if meta is None:
            meta = metadata[meta_text] = validate_stored(EventMetadata, meta_text)
        append(
            RecordedEvent(
                position,
                transaction_id,
                stream_id,
                version,
                event_id,
                type_name,
                schema_version,
                stored_decoder(type_name, schema_version)(data),
                meta,
                recorded_at,
            )
        )
    return recorded


def _check_limit(limit: int) -> None:
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")


_READ_ALL = f"""
SELECT {COLUMNS} FROM events
 WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $3
"""

_READ_ALL_OF_TYPES = f"""
SELECT {COLUMNS} FROM events
 WHERE type = ANY($4::text[])
   AND (transaction_id, position) > ($1::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $3
"""


async def _read_rows(
    executor: Executor, after: Cursor, limit: int, types: Sequence[str] | None
) -> list[asyncpg.Record]:
    if types:
        return await executor.fetch(
            _READ_ALL_OF_TYPES, after.transaction_id, after.position, limit, list(types)
        )
    return await executor.fetch(_READ_ALL, after.transaction_id, after.position, limit)


async def read_all(
    executor: Executor,
    *,
    after: Cursor = START,
    limit: int = 1000,
    types: Sequence[str] | None = None,
) -> list[RecordedEvent]:
    """Committed events (of `types`) after `after` in global order, never skipping a late commit."""
    _check_limit(limit)
    return to_recorded(await _read_rows(executor, after, limit, types))


async def read_all_pages(
    connection: Connection,
    *,
    after: Cursor = START,
    limit: int = 1000,
    types: Sequence[str] | None = None,
) -> AsyncGenerator[list[RecordedEvent], None]:
    """`read_all` page after page until a page comes back short (the reader has reached the
    horizon as it stood then), each page's query sent before the page before it is decoded.

    The same pages, in the same order, as calling `read_all` with the last cursor of each: the
    next cursor is in the raw rows, so PostgreSQL finds and sends the next page while this
    process builds the models of this one (bench/README.md, issue 16 item 6). While the
    iterator is open a query of its own may be in flight on `connection`, so the caller does
    not use the connection until it is closed (`contextlib.aclosing`, or
    `EventStore.read_all_pages`, which closes it); closing waits for that page to arrive.
    """
    _check_limit(limit)
    rows = await _read_rows(connection, after, limit, types)
    ahead: asyncio.Task[list[asyncpg.Record]] | None = None
    try:
        while rows:
            if len(rows) == limit:
                last = rows[-1]
                ahead = asyncio.create_task(
                    _read_rows(connection, Cursor(last[1], last[0]), limit, types)
                )
                ahead.add_done_callback(_retrieve)
                # One turn of the loop: the task sends its query before decoding starts here.
                await asyncio.sleep(0)
            yield to_recorded(rows)
            if ahead is None:
                return
            # Shielded: a reader cancelled here leaves the page to arrive (below) rather than
            # cancel its query on a connection the caller keeps (in a transaction, that would
            # abort it).
            rows = await asyncio.shield(ahead)
            ahead = None
    finally:
        if ahead is not None:
            await _arrived(ahead)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A read-ahead's error is raised where its page is awaited, or not at all when the reader
    left first: never logged by asyncio as lost."""
    if not task.cancelled():
        task.exception()


async def _arrived(task: asyncio.Task[Any]) -> None:
    """Wait until `task` is done, however often the waiter is cancelled meanwhile (a timeout,
    then a shutdown), so the connection is idle when its owner gets it back; then pass the
    cancellation on."""
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


_ANY_AFTER = """
SELECT EXISTS (
    SELECT 1 FROM events
     WHERE type = ANY($3::text[])
       AND (transaction_id, position) > ($1::xid8, $2::bigint)
       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
)
"""


async def any_after(executor: Executor, *, after: Cursor, types: Sequence[str]) -> bool:
    """Whether a committed event of `types` lies after `after` behind the horizon: what
    `read_all` would find, without reading or decoding it."""
    found: bool = await executor.fetchval(
        _ANY_AFTER, after.transaction_id, after.position, list(types)
    )
    return found


_HEAD = """
SELECT transaction_id, position FROM events
 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id DESC, position DESC
 LIMIT 1
"""


async def head(executor: Executor) -> Cursor:
    """The cursor of the last event a subscriber can read now."""
    row = await executor.fetchrow(_HEAD)
    return START if row is None else Cursor(row["transaction_id"], row["position"])


_CURSOR_AT = "SELECT transaction_id, position FROM events WHERE position = $1"


async def cursor_at(executor: Executor, position: int) -> Cursor | None:
    """The cursor of the committed event at `position` (horizon or not); None if there is none."""
    row = await executor.fetchrow(_CURSOR_AT, position)
    return None if row is None else Cursor(row["transaction_id"], row["position"])


# Every committed event after the cursor, horizon or not: lag is what a reader has yet to see.
_BACKLOG = """
SELECT count(*) AS events,
       coalesce(extract(epoch FROM clock_timestamp() - min(recorded_at)), 0)::float8 AS seconds
  FROM events
 WHERE type = ANY($3::text[])
   AND (transaction_id, position) > ($1::xid8, $2::bigint)
"""


class Backlog(NamedTuple):
    """How far a cursor trails the log: events after it, and how long the oldest has waited."""

    events: int
    seconds: float


async def backlog(executor: Executor, *, after: Cursor, types: Sequence[str]) -> Backlog:
    """Committed events of `types` after `after`, and the age of the oldest of them in seconds."""
    row = await executor.fetchrow(_BACKLOG, after.transaction_id, after.position, list(types))
    assert row is not None  # an aggregate always returns one row
    return Backlog(events=row["events"], seconds=row["seconds"])


# MATERIALIZED: find the call's few events through its index (`events_call_id` in schema.sql)
# first. Left to itself the planner walks the whole log in (transaction id, position) order to
# meet ORDER BY ... LIMIT early.
_READ_CALL = f"""
WITH about AS MATERIALIZED (
    SELECT {COLUMNS} FROM events
     WHERE data ? 'call_id' AND data ->> 'call_id' = $1
)
SELECT * FROM about
 WHERE (transaction_id, position) > ($2::xid8, $3::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $4
"""


async def read_call(
    executor: Executor, call_id: str, *, after: Cursor = START, limit: int = 100
) -> list[RecordedEvent]:
    """Events whose data names `call_id`, after `after` in global order (as `read_all`)."""
    _check_limit(limit)
    rows = await executor.fetch(_READ_CALL, call_id, after.transaction_id, after.position, limit)
    return to_recorded(rows)


# An event names a booking as `booking_uid`, or as `new_booking_uid` when a reschedule moved it
# there (indexes `events_booking_uid`, `events_new_booking_uid`); MATERIALIZED as above.
_READ_BOOKING = f"""
WITH about AS MATERIALIZED (
    SELECT {COLUMNS} FROM events
     WHERE data ? 'booking_uid' AND data ->> 'booking_uid' = $1
    UNION ALL
    SELECT {COLUMNS} FROM events
     WHERE data ? 'new_booking_uid' AND data ->> 'new_booking_uid' = $1
       AND data ->> 'booking_uid' IS DISTINCT FROM $1
)
SELECT * FROM about
 WHERE (transaction_id, position) > ($2::xid8, $3::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $4
"""


async def read_booking(
    executor: Executor, booking_uid: str, *, after: Cursor = START, limit: int = 100
) -> list[RecordedEvent]:
    """Events about Cal.com booking `booking_uid`, after `after` in global order (as `read_all`)."""
    _check_limit(limit)
    args = (booking_uid, after.transaction_id, after.position, limit)
    return to_recorded(await executor.fetch(_READ_BOOKING, *args))
