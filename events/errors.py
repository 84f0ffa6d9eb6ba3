"""Errors the event store raises; each names what the caller can do next.

Also the one list of errors that mean "the database is away, retry later", which every caller
that must tell that from a bug uses (`is_transient`, `TRANSIENT_DATABASE_ERRORS`).
"""

from __future__ import annotations

from pathlib import Path

import asyncpg


class EventStoreError(Exception):
    """Base class for every error raised by the ledger."""


class WrongExpectedVersion(EventStoreError):
    """The stream is not at the version the caller expected: reload it and decide again."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the append expected {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class EventIdConflict(EventStoreError):
    """An event id in the batch is already stored with other content: a bug, not a retry."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(
            f"an event id appended to {stream_id!r} is already stored with other content"
        )
        self.stream_id = stream_id


class UnknownEventType(EventStoreError):
    """No model is registered for that type name and schema version."""

    def __init__(self, type_name: str, schema_version: int | None = None) -> None:
        which = type_name if schema_version is None else f"{type_name} v{schema_version}"
        super().__init__(f"unknown event type {which}")
        self.type_name = type_name
        self.schema_version = schema_version


class InvalidEvent(EventStoreError):
    """An event's payload does not fit its model, or is too large to store."""


class DatabaseUnavailable(EventStoreError):
    """PostgreSQL cannot be reached right now; retrying later may succeed."""


class NoEmbeddedDatabase(DatabaseUnavailable):
    """A command that only reads found no embedded database to read, and made none."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(
            f"no database in {data_dir}; start the service with `booking-guard serve` first, "
            "or set DATABASE_URL"
        )
        self.data_dir = data_dir


# The database being away or overwhelmed: the same work may succeed later, so callers retry,
# pause or answer 503 instead of treating it as a bug. Nothing else belongs here.
TRANSIENT_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    # No route, refused, reset, and TimeoutError (an OSError) from connecting or `asyncio.timeout`.
    OSError,
    # "connection is closed": the server ended the session under us.
    asyncpg.InterfaceError,
    # Class 08: the connection failed or does not exist.
    asyncpg.PostgresConnectionError,
    # Class 57: 57P01-57P03, the server is shutting down or starting up (a restart, a failover);
    # 57014, a statement cancelled by statement_timeout or an operator, may run again later.
    asyncpg.OperatorInterventionError,
    # Class 53: too many connections (a restart's clients reconnecting), out of memory, disk full.
    asyncpg.InsufficientResourcesError,
    # What asyncpg sometimes raises instead on a session the server terminated ("cannot switch
    # to state 15; another operation is in progress", MagicStack/asyncpg#1069); the pool
    # terminates that connection on release, so the retry gets a fresh one.
    asyncpg.InternalClientError,
    # Ours: raised by the store and the pool for all of the above.
    DatabaseUnavailable,
)
# Not here: class 40, a deadlock (40P01) or serialization failure (40001). The database is there
# and chose another transaction over this one; that is a conflict the caller answers on its own
# (the API as `database_conflict`, a projector by trying the batch again), not the database away.


# Whatever the database or the connection to it may raise: the above and every answer of the
# server (a constraint, a version check, a missing table). For code that translates or reports
# what the database said; whether to retry is `is_transient`'s to say.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    *TRANSIENT_DATABASE_ERRORS,
)


def is_transient(error: BaseException) -> bool:
    """True when `error` means the database is away for now and the same work may succeed later."""
    return isinstance(error, TRANSIENT_DATABASE_ERRORS)
