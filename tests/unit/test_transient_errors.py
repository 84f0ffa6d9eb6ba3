"""The one list of transient database errors: what means "the database is away, retry"."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from events.errors import (
    DATABASE_ERRORS,
    TRANSIENT_DATABASE_ERRORS,
    DatabaseUnavailable,
    EventIdConflict,
    InvalidEvent,
    WrongExpectedVersion,
    is_transient,
)
from events.store import ExpectedVersion, append_error
from projections.errors import RETRY_LATER

TRANSIENT: list[BaseException] = [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    OSError(101, "Network is unreachable"),
    TimeoutError(),  # connecting, or asyncio.timeout around a query
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.ConnectionFailureError("connection failure"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.DiskFullError("could not extend file"),
    asyncpg.InternalClientError("cannot switch to state 15; another operation is in progress"),
    DatabaseUnavailable("cannot connect to PostgreSQL"),
]

NOT_TRANSIENT: list[BaseException] = [
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.ForeignKeyViolationError("violates foreign key constraint"),
    asyncpg.CheckViolationError("violates check constraint"),
    asyncpg.UndefinedTableError('relation "events" does not exist'),
    asyncpg.PostgresSyntaxError("syntax error at or near"),
    asyncpg.InvalidTextRepresentationError("invalid input syntax for type uuid"),
    asyncpg.InsufficientPrivilegeError("permission denied for table events"),
    asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
    # Class 40: the database is there and chose another transaction (events/errors.py).
    asyncpg.DeadlockDetectedError("deadlock detected"),
    asyncpg.SerializationError("could not serialize access"),
    WrongExpectedVersion("s-1", 1, 2),
    EventIdConflict("s-1"),
    InvalidEvent("too large"),
    ValueError("a bug"),
    KeyError("a bug"),
    RuntimeError("a bug"),
    asyncio.CancelledError(),
]


def _name(error: BaseException) -> str:
    return type(error).__name__


@pytest.mark.parametrize("error", TRANSIENT, ids=_name)
def test_the_database_being_away_is_transient(error: BaseException) -> None:
    assert is_transient(error)
    assert isinstance(error, TRANSIENT_DATABASE_ERRORS)


@pytest.mark.parametrize("error", NOT_TRANSIENT, ids=_name)
def test_an_answer_of_the_database_or_a_bug_is_not_transient(error: BaseException) -> None:
    assert not is_transient(error)
    assert not isinstance(error, TRANSIENT_DATABASE_ERRORS)


@pytest.mark.parametrize(
    "error",
    [asyncpg.DeadlockDetectedError("deadlock detected"), asyncpg.SerializationError("x")],
    ids=_name,
)
def test_a_projector_tries_a_rolled_back_batch_again(error: BaseException) -> None:
    assert isinstance(error, RETRY_LATER)
    assert not is_transient(error)


@pytest.mark.parametrize("error", TRANSIENT, ids=_name)
def test_a_projector_pauses_while_the_database_is_away(error: BaseException) -> None:
    assert isinstance(error, RETRY_LATER)


def test_database_errors_are_the_transient_ones_and_every_answer_of_postgresql() -> None:
    for error in TRANSIENT:
        assert isinstance(error, DATABASE_ERRORS)
    assert isinstance(asyncpg.UniqueViolationError("x"), DATABASE_ERRORS)
    assert not isinstance(ValueError("a bug"), DATABASE_ERRORS)


@pytest.mark.parametrize("error", [e for e in TRANSIENT if isinstance(e, Exception)], ids=_name)
def test_an_append_failing_on_the_database_being_away_is_database_unavailable(
    error: Exception,
) -> None:
    translated = append_error(error, "s-1", ExpectedVersion.ANY)
    assert isinstance(translated, DatabaseUnavailable)


def test_an_append_failing_on_a_bug_keeps_its_error() -> None:
    error = asyncpg.PostgresSyntaxError("syntax error")
    assert append_error(error, "s-1", 3) is error
