"""The event store: append with an expected version, read a stream, read everything in order.

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
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from events.errors import (
    DatabaseUnavailable,
    EventIdConflict,
    InvalidEvent,
    WrongExpectedVersion,
)
from events.models import EventMetadata, NewEvent, RecordedEvent, decode, model_for

DEFAULT_MAX_EVENT_BYTES = 64 * 1024

log = logging.getLogger(__name__)


class ExpectedVersion(enum.IntEnum):
    """Expectations about a stream other than an exact version."""

    NO_STREAM = -1
    STREAM_EXISTS = -2
    ANY = -3


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
_NO_STREAM, _ANY = int(ExpectedVersion.NO_STREAM), int(ExpectedVersion.ANY)

_APPEND = "SELECT bg_append_events($1, $2, $3, $4, $5, $6, $7)"

# One event at an exact version, the booking path's every append: a plain INSERT, scalars, no
# function. The version before it must exist (no gaps). A version or event id already taken
# makes it insert nothing, and _REFUSED_ONE says why: on its own, by a unique violation; inside
# a caller's transaction, which an error would abort, by skipping the row (ON CONFLICT, whose
# speculative insertion costs the common case a little). bg_append_events costs about a quarter
# of the throughput for the same row (bench/README.md, "append").
_APPEND_ONE = """
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
SELECT $1, $2::integer + 1, $3, $4, $5, $6, $7
 WHERE $2 = 0 OR EXISTS (SELECT FROM events WHERE stream_id = $1 AND version = $2)
"""
_APPEND_ONE_IN_TRANSACTION = _APPEND_ONE + "    ON CONFLICT DO NOTHING\n"

_REFUSED_ONE = """
SELECT (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1) AS version,
       (SELECT stream_id = $1 AND type = $3 AND schema_version = $4 AND data = $5::jsonb
          FROM events WHERE event_id = $2) AS same
"""

_NOTIFY = "SELECT pg_notify('bg_events', '')"

# Under a steady stream of appends, subscribers are woken at most this often: each NOTIFY is a
# commit of its own, which at one writer would otherwise double the commits.
WAKE_INTERVAL_SECONDS = 0.05

_COLUMNS = (
    "position, transaction_id, stream_id, version, event_id, type, schema_version,"
    " data, metadata, recorded_at"
)

_READ_STREAM = f"""
SELECT {_COLUMNS} FROM events
 WHERE stream_id = $1 AND version > $2
 ORDER BY version
 LIMIT $3
"""

_READ_ALL = f"""
SELECT {_COLUMNS} FROM events
 WHERE (transaction_id, position) > ($1::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $3
"""

_READ_ALL_OF_TYPES = f"""
SELECT {_COLUMNS} FROM events
 WHERE type = ANY($4::text[])
   AND (transaction_id, position) > ($1::xid8, $2::bigint)
   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id, position
 LIMIT $3
"""

_STREAM_VERSION = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1"

_HEAD = """
SELECT transaction_id, position FROM events
 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY transaction_id DESC, position DESC
 LIMIT 1
"""

Connection = asyncpg.Connection | PoolConnectionProxy
# An event as its row holds it: event id, type, schema version, data and metadata as JSON.
EncodedEvent = tuple[uuid.UUID, str, int, str, str]
Executor = asyncpg.Pool | Connection


class EventStore:
    """Appends events to streams and reads them back, over an asyncpg pool."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        wake_interval: float = WAKE_INTERVAL_SECONDS,
    ):
        self._pool = pool
        self._max_event_bytes = max_event_bytes
        self._wake_interval = wake_interval
        self._waking: asyncio.Task[None] | None = None
        self._wake_again = False

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | ExpectedVersion,
        connection: Connection | None = None,
    ) -> int:
        """Append `events` to `stream_id` atomically; return the stream's new version.

        Pass `connection` to append inside a transaction the caller holds, and call
        `wake_subscribers()` once it has committed. Appending the same event ids again is a
        no-op that returns -1.
        """
        if not stream_id:
            raise InvalidEvent("stream_id must be a non-empty string")
        if not events:
            raise InvalidEvent("append needs at least one event")
        expected = int(expected_version)  # plain ints from here: IntEnum comparisons are slow
        if expected < _ANY:
            raise InvalidEvent(
                f"expected_version must be >= 0 or an ExpectedVersion, got {expected_version}"
            )
        executor: Executor = connection if connection is not None else self._pool
        version: int
        try:
            if len(events) == 1 and expected >= _NO_STREAM:
                version = await _append_one(executor, stream_id, expected, self.encode(events[0]))
            else:
                columns = batch_columns([self.encode(new) for new in events])
                version = await executor.fetchval(_APPEND, stream_id, expected, *columns)
        except asyncpg.PostgresError as e:
            raise translate_error(e, stream_id, expected_version) from e
        except (OSError, asyncpg.InterfaceError) as e:
            raise DatabaseUnavailable(f"could not append to {stream_id!r}: {e}") from e
        if connection is None:
            self.wake_subscribers()
        return version

    def wake_subscribers(self) -> None:
        """NOTIFY `bg_events` after a commit; appends landing meanwhile share the next one."""
        if self._waking is None or self._waking.done():
            self._waking = asyncio.get_running_loop().create_task(self._notify())
        else:
            self._wake_again = True

    async def _notify(self) -> None:
        # Not inside the append's transaction: a NOTIFY holds PostgreSQL's cluster-wide notify
        # lock from pre-commit until its commit is flushed, so appends would stop sharing WAL
        # flushes (bench/README.md). The first append after a quiet spell wakes subscribers at
        # once; appends during the next interval share one NOTIFY at its end. Subscribers poll
        # as well, so a lost wake-up only delays them.
        while True:
            self._wake_again = False
            try:
                await self._pool.execute(_NOTIFY)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.debug("wake-up NOTIFY failed, subscribers will poll: %s", e)
                return
            await asyncio.sleep(self._wake_interval)
            if not self._wake_again:
                return

    async def close(self) -> None:
        """Wait for a wake-up in flight, so the pool can close cleanly."""
        if self._waking is not None:
            await asyncio.gather(self._waking, return_exceptions=True)

    def encode(self, new: NewEvent) -> EncodedEvent:
        """The row an append would write for `new`; InvalidEvent if it may not be written."""
        cls = type(new.event)
        # Only registered, current models may be written: old versions exist only on disk.
        if model_for(cls.type_name) is not cls:
            raise InvalidEvent(f"{cls.__name__} is not the registered model of {cls.type_name}")
        payload = new.event.__pydantic_serializer__.to_json(new.event)
        if len(payload) > self._max_event_bytes:
            raise InvalidEvent(
                f"{cls.type_name} payload is {len(payload)} bytes,"
                f" the limit is {self._max_event_bytes}"
            )
        metadata = new.metadata.model_dump_json(exclude_none=True)
        return new.event_id, cls.type_name, cls.schema_version, payload.decode(), metadata

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it has no events."""
        version: int = await self._pool.fetchval(_STREAM_VERSION, stream_id)
        return version

    async def read_stream(
        self, stream_id: str, *, after_version: int = 0, limit: int = 10_000
    ) -> list[RecordedEvent]:
        """Events of one stream with a version above `after_version`, in version order."""
        rows = await self._fetch(_READ_STREAM, stream_id, after_version, limit)
        return [to_recorded(row) for row in rows]

    async def read_all(
        self,
        *,
        after: Cursor = START,
        limit: int = 1000,
        types: Sequence[str] | None = None,
        connection: Connection | None = None,
    ) -> list[RecordedEvent]:
        """Committed events after `after` in global order, never skipping a late commit."""
        if limit <= 0:
            raise ValueError(f"limit must be positive, got {limit}")
        executor: Executor = connection if connection is not None else self._pool
        if types:
            rows = await executor.fetch(
                _READ_ALL_OF_TYPES, after.transaction_id, after.position, limit, list(types)
            )
        else:
            rows = await executor.fetch(_READ_ALL, after.transaction_id, after.position, limit)
        return [to_recorded(row) for row in rows]

    async def head(self) -> Cursor:
        """The cursor of the last event a subscriber can read now."""
        row = await self._fetchrow(_HEAD)
        return START if row is None else Cursor(row["transaction_id"], row["position"])

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(query, *args)
        except (OSError, asyncpg.InterfaceError) as e:
            raise DatabaseUnavailable(str(e)) from e

    async def _fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        try:
            return await self._pool.fetchrow(query, *args)
        except (OSError, asyncpg.InterfaceError) as e:
            raise DatabaseUnavailable(str(e)) from e


def batch_columns(rows: Sequence[EncodedEvent]) -> list[list[Any]]:
    """Encoded events as bg_append_events takes them: one array per column."""
    return [list(column) for column in zip(*rows, strict=True)]


async def _append_one(
    executor: Executor, stream_id: str, expected: int, event: EncodedEvent
) -> int:
    event_id, type_name, schema_version, data, _ = event
    after = expected if expected > 0 else 0  # NO_STREAM is version 0
    # execute, not fetchval: no row to decode, which costs asyncpg more than the insert's check.
    if isinstance(executor, asyncpg.Pool):
        try:
            inserted = await executor.execute(_APPEND_ONE, stream_id, after, *event)
        except asyncpg.UniqueViolationError:
            inserted = "INSERT 0 0"
    else:
        inserted = await executor.execute(_APPEND_ONE_IN_TRANSACTION, stream_id, after, *event)
    if inserted == "INSERT 0 1":
        return after + 1
    # Nothing inserted: a retry of this very event, an id reused, or a version taken. Read in
    # a statement of its own, so a racing append that has committed since is seen.
    row = await executor.fetchrow(
        _REFUSED_ONE, stream_id, event_id, type_name, schema_version, data
    )
    assert row is not None
    if row["same"] is True:
        return -1
    if row["same"] is False:
        raise EventIdConflict(stream_id)
    raise WrongExpectedVersion(stream_id, _describe(expected), row["version"])


def to_recorded(row: asyncpg.Record) -> RecordedEvent:
    """Turn an `events` row into a RecordedEvent, upcasting old schema versions."""
    return RecordedEvent(
        position=row["position"],
        transaction_id=row["transaction_id"],
        stream_id=row["stream_id"],
        version=row["version"],
        event_id=row["event_id"],
        type=row["type"],
        schema_version=row["schema_version"],
        event=decode(row["type"], row["schema_version"], row["data"]),
        metadata=EventMetadata.model_validate(row["metadata"]),
        recorded_at=row["recorded_at"],
    )


def translate_error(
    error: asyncpg.PostgresError, stream_id: str, expected: int | ExpectedVersion
) -> Exception:
    """The store's error for what PostgreSQL said about an append (or `error` itself)."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate == "BG001":
        detail = getattr(error, "detail", None) or "0"
        return WrongExpectedVersion(stream_id, _describe(expected), int(detail))
    if sqlstate == "BG002":
        return EventIdConflict(stream_id)
    if sqlstate == "23505":
        # Unreachable through the store (its inserts skip taken versions and look again); a
        # writer inserting into `events` by hand could still cause it. The actual version is
        # unknown here, hence -1.
        return WrongExpectedVersion(stream_id, _describe(expected), -1)
    if sqlstate is not None and sqlstate.startswith(("08", "57P")):
        return DatabaseUnavailable(str(error))
    return error


def _describe(expected: int | ExpectedVersion) -> object:
    return ExpectedVersion(expected).name if int(expected) < 0 else int(expected)
