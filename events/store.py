"""The event store: append with an expected version, read a stream, read everything in order.

Reads of the global order ("events after this cursor") are in events/reads.py, which explains
the transaction horizon they read behind; `EventStore.read_all` and `head` are those reads over
the store's pool. Callers import `Cursor`, `START` and `Connection` from here too.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from events import reads
from events.database import Connection, Executor
from events.errors import (
    DATABASE_ERRORS,
    TRANSIENT_DATABASE_ERRORS,
    DatabaseUnavailable,
    EventIdConflict,
    EventStoreError,
    InvalidEvent,
    WrongExpectedVersion,
    is_transient,
)
from events.models import Event, NewEvent, RecordedEvent, model_for
from events.reads import START, Cursor, to_recorded

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "START",
    "WAKE_INTERVAL_SECONDS",
    "Connection",
    "Cursor",
    "EncodedEvent",
    "EventStore",
    "Executor",
    "ExpectedVersion",
    "append_arguments",
    "append_error",
    "append_statement",
    "start_stream_arguments",
    "start_stream_statement",
]

DEFAULT_MAX_EVENT_BYTES = 64 * 1024

log = logging.getLogger(__name__)


class ExpectedVersion(enum.IntEnum):
    """Expectations about a stream other than an exact version."""

    NO_STREAM = -1
    STREAM_EXISTS = -2
    ANY = -3


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

# A batch at an exact version from outside a transaction: the same, over unnest, which is
# bg_append_events' insert without the function's version read and ON CONFLICT (bench/README.md,
# issue 16 item 4: the function cost a fifth of a 100-event append). A taken version or event id
# fails the statement, which inserts nothing, and _REFUSED_MANY says why as bg_append_events would.
# The JSON goes as text[] and is cast in the statement: the same parse in PostgreSQL as a jsonb[]
# parameter, without a call of the Python jsonb codec per element (events/database.py).
_APPEND_MANY = """
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
SELECT $1, $2::integer + n.ord, n.event_id, n.type, n.schema_version, n.data::jsonb,
       n.metadata::jsonb
  FROM unnest($3::uuid[], $4::text[], $5::integer[], $6::text[], $7::text[])
           WITH ORDINALITY AS n(event_id, type, schema_version, data, metadata, ord)
 WHERE $2 = 0 OR EXISTS (SELECT FROM events WHERE stream_id = $1 AND version = $2)
"""

_REFUSED_MANY = """
SELECT (SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1) AS version,
       count(e.event_id) AS stored,
       count(*) FILTER (WHERE e.stream_id = $1 AND e.type = n.type
                          AND e.schema_version = n.schema_version AND e.data = n.data) AS same
  FROM unnest($2::uuid[], $3::text[], $4::integer[], $5::jsonb[])
           AS n(event_id, type, schema_version, data)
  LEFT JOIN events e ON e.event_id = n.event_id
"""

_NOTIFY = "SELECT pg_notify('bg_events', '')"

# Under a steady stream of appends, subscribers are woken at most this often: each NOTIFY is a
# commit of its own, which at one writer would otherwise double the commits.
WAKE_INTERVAL_SECONDS = 0.05

_READ_STREAM = f"""
SELECT {reads.COLUMNS}
  FROM events
 WHERE stream_id = $1 AND version > $2
 ORDER BY version
 LIMIT $3
"""

_STREAM_VERSION = "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1"

# An event as its row holds it: event id, type, schema version, data and metadata as JSON
# (`EventStore.encode`; what `append_arguments` and `start_stream_arguments` take).
EncodedEvent = tuple[uuid.UUID, str, int, str, str]


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
        expected = _checked(stream_id, events, expected_version)
        executor: Executor = connection if connection is not None else self._pool
        version: int
        try:
            if len(events) == 1 and expected >= _NO_STREAM:
                version = await _append_one(executor, stream_id, expected, self.encode(events[0]))
            elif expected >= _NO_STREAM and isinstance(executor, asyncpg.Pool):
                version = await _append_many(executor, stream_id, expected, self._encode(events))
            else:
                columns = _batch_columns(self._encode(events))
                version = await executor.fetchval(_APPEND, stream_id, expected, *columns)
        except DATABASE_ERRORS as e:
            raise append_error(e, stream_id, expected_version) from e
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
            except DATABASE_ERRORS as e:
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

    def _encode(self, events: Sequence[NewEvent]) -> list[EncodedEvent]:
        """`encode` of each event. A batch's events mostly share one metadata object (the
        command's) and a few classes: each is serialised or checked once per batch."""
        registered: set[type[Event]] = set()
        metadata: dict[int, str] = {}  # by id(): every object stays alive in `events` meanwhile
        encoded: list[EncodedEvent] = []
        for new in events:
            cls = type(new.event)
            if cls not in registered:
                if model_for(cls.type_name) is not cls:
                    raise InvalidEvent(
                        f"{cls.__name__} is not the registered model of {cls.type_name}"
                    )
                registered.add(cls)
            payload = new.event.__pydantic_serializer__.to_json(new.event)
            if len(payload) > self._max_event_bytes:
                raise InvalidEvent(
                    f"{cls.type_name} payload is {len(payload)} bytes,"
                    f" the limit is {self._max_event_bytes}"
                )
            meta = metadata.get(id(new.metadata))
            if meta is None:
                meta = metadata[id(new.metadata)] = new.metadata.model_dump_json(exclude_none=True)
            encoded.append(
                (new.event_id, cls.type_name, cls.schema_version, payload.decode(), meta)
            )
        return encoded

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it has no events."""
        version: int = await self._pool.fetchval(_STREAM_VERSION, stream_id)
        return version

    async def read_stream(
        self, stream_id: str, *, after_version: int = 0, limit: int = 10_000
    ) -> list[RecordedEvent]:
        """Events of one stream with a version above `after_version`, in version order."""
        rows = await self._fetch(_READ_STREAM, stream_id, after_version, limit)
        return to_recorded(rows)

    async def read_all(
        self,
        *,
        after: Cursor = START,
        limit: int = 1000,
        types: Sequence[str] | None = None,
        connection: Connection | None = None,
    ) -> list[RecordedEvent]:
        """Committed events after `after` in global order, never skipping a late commit.

        `reads.read_all` on the store's pool, or on `connection` (a projector reads inside the
        transaction that applies the events and advances its checkpoint).
        """
        executor: Executor = connection if connection is not None else self._pool
        return await reads.read_all(executor, after=after, limit=limit, types=types)

    @asynccontextmanager
    async def read_all_pages(
        self,
        *,
        after: Cursor = START,
        limit: int = 1000,
        types: Sequence[str] | None = None,
    ) -> AsyncIterator[AsyncIterator[list[RecordedEvent]]]:
        """Every committed event after `after`, as pages of `read_all`, the next page fetched
        while this one is decoded (`reads.read_all_pages`), on a connection of the pool held
        until the block ends::

            async with store.read_all_pages(after=cursor) as pages:
                async for page in pages:
                    ...

        A context manager, not a bare iterator, so that leaving the loop early always waits
        for the page in flight before the connection goes back to the pool.
        """
        async with self._pool.acquire() as connection:
            pages = reads.read_all_pages(connection, after=after, limit=limit, types=types)
            try:
                yield pages
            finally:
                await pages.aclose()

    async def head(self) -> Cursor:
        """The cursor of the last event a subscriber can read now."""
        try:
            return await reads.head(self._pool)
        except TRANSIENT_DATABASE_ERRORS as e:
            raise DatabaseUnavailable(str(e)) from e

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        try:
            return await self._pool.fetch(query, *args)
        except TRANSIENT_DATABASE_ERRORS as e:
            raise DatabaseUnavailable(str(e)) from e


def _checked(
    stream_id: str, events: Sequence[object], expected_version: int | ExpectedVersion
) -> int:
    """The expected version as a plain int, once the append's arguments are known to be good."""
    if not stream_id:
        raise InvalidEvent("stream_id must be a non-empty string")
    if not events:
        raise InvalidEvent("append needs at least one event")
    expected = int(expected_version)  # plain ints from here: IntEnum comparisons are slow
    if expected < _ANY:
        raise InvalidEvent(
            f"expected_version must be >= 0 or an ExpectedVersion, got {expected_version}"
        )
    return expected


def _batch_columns(rows: Sequence[EncodedEvent]) -> list[list[Any]]:
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


async def _append_many(
    pool: asyncpg.Pool, stream_id: str, expected: int, events: list[EncodedEvent]
) -> int:
    after = expected if expected > 0 else 0  # NO_STREAM is version 0
    event_ids, type_names, schema_versions, data, metadata = _batch_columns(events)
    try:
        inserted = await pool.execute(
            _APPEND_MANY, stream_id, after, event_ids, type_names, schema_versions, data, metadata
        )
    except asyncpg.UniqueViolationError:
        inserted = "INSERT 0 0"
    if inserted != "INSERT 0 0":
        return after + len(events)
    # Nothing inserted: one id twice in the batch (a conflict, as bg_append_events says), a
    # retry of this very batch, an id reused, or a version taken. The last three are read in a
    # statement of its own, so a racing append that has committed since is seen.
    if len(set(event_ids)) != len(event_ids):
        raise EventIdConflict(stream_id)
    row = await pool.fetchrow(
        _REFUSED_MANY, stream_id, event_ids, type_names, schema_versions, data
    )
    assert row is not None  # an aggregate always returns one row
    if row["stored"] == len(events) and row["same"] == row["stored"]:
        return -1
    if row["stored"] > 0:
        raise EventIdConflict(stream_id)
    raise WrongExpectedVersion(stream_id, _describe(expected), row["version"])


# Appends embedded in a caller's statement
# -----------------------------------------
# The booking's phase writes (service/booking/phase_writes.py) append in the same statement as
# their idempotency-key write (and a confirmation's appointment): one statement is one round
# trip and atomic without BEGIN and COMMIT, which keeps a booking at two round trips
# (bench/README.md). These give such a statement the store's append as SQL to embed and its
# arguments, and tell what its errors mean, so that what is written and checked stays here.
# Encode the events with `EventStore.encode`, which checks them as `append` does.


def append_statement(*, first: int = 1) -> str:
    """An append as a query to embed (a CTE's body), one row: the stream's new `version`.

    Its parameters, from `$first` on, are `append_arguments(...)`. It checks the expected
    version as `append` does; a failed check fails the whole statement (see `append_error`).
    """
    p = [f"${n}" for n in range(first, first + 7)]
    return f"SELECT bg_append_events({', '.join(p)}) AS version"


def append_arguments(
    stream_id: str, events: Sequence[EncodedEvent], *, expected_version: int | ExpectedVersion
) -> list[Any]:
    """The parameters of `append_statement`: append `events` at `expected_version`."""
    expected = _checked(stream_id, events, expected_version)
    return [stream_id, expected, *_batch_columns(events)]


def start_stream_statement(*, first: int = 1, once_per: str) -> str:
    """The INSERT of a new stream's first event, to follow the caller's CTE `once_per`.

    The event is written if that CTE returns a row (say, an idempotency key just claimed) and
    not otherwise; the statement's status tells which ("INSERT 0 1" or "INSERT 0 0"). Its
    parameters, from `$first` on, are `start_stream_arguments(...)`. A stream that exists
    already fails the statement (`append_error` makes that WrongExpectedVersion).
    """
    if not once_per.isidentifier():
        raise ValueError(f"once_per must name a CTE, got {once_per!r}")
    p = [f"${n}" for n in range(first, first + 6)]
    return f"""
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
SELECT {p[0]}, 1, {", ".join(p[1:])} FROM {once_per}
"""


def start_stream_arguments(stream_id: str, event: EncodedEvent) -> list[Any]:
    """The parameters of `start_stream_statement`: `event` as version 1 of `stream_id`."""
    _checked(stream_id, [event], ExpectedVersion.NO_STREAM)
    return [stream_id, *event]


def append_error(
    error: Exception, stream_id: str, expected_version: int | ExpectedVersion
) -> Exception:
    """The store's error for an append that failed with `error` (else `error` itself).

    WrongExpectedVersion or EventIdConflict for what PostgreSQL said about the append,
    DatabaseUnavailable when the database is away (events/errors.py).
    """
    if isinstance(error, EventStoreError):
        return error
    if is_transient(error):
        return DatabaseUnavailable(f"could not append to {stream_id!r}: {error}")
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate == "BG001":
        detail = getattr(error, "detail", None) or "0"
        return WrongExpectedVersion(stream_id, _describe(expected_version), int(detail))
    if sqlstate == "BG002":
        return EventIdConflict(stream_id)
    if sqlstate == "23505":
        # `append` never meets it (its inserts skip taken versions and look again); a stream
        # started by `start_stream_statement` that exists already does, and so would a writer
        # inserting into `events` by hand. The actual version is unknown here, hence -1.
        return WrongExpectedVersion(stream_id, _describe(expected_version), -1)
    return error


def _describe(expected: int | ExpectedVersion) -> object:
    return ExpectedVersion(expected).name if int(expected) < 0 else int(expected)
