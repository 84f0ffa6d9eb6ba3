"""Why the service is not ready, in words an operator can act on."""

from __future__ import annotations

import asyncpg
import pytest

from service.ops.database_status import (
    DatabaseStatus,
    OpenTransaction,
    ProjectionStatus,
    ReadyLimits,
    describe_database_error,
    problems,
)

LIMITS = ReadyLimits(max_projection_lag_seconds=30, max_transaction_seconds=60)


def projection(name: str, *, seconds: float = 0, state: str = "running") -> ProjectionStatus:
    return ProjectionStatus(
        name=name,
        started=True,
        state=state,
        error="boom" if state == "failed" else None,
        position=10,
        events_behind=3 if seconds else 0,
        seconds_behind=seconds,
    )


def test_a_healthy_database_is_ready() -> None:
    status = DatabaseStatus(projections=(projection("rejections"),))
    assert problems(status, LIMITS) == []


def test_an_unreachable_database_is_the_only_reason_given() -> None:
    status = DatabaseStatus(error="connection refused")
    assert problems(status, LIMITS) == ["database unavailable: connection refused"]


def test_a_missing_schema_is_named() -> None:
    status = DatabaseStatus(missing_tables=("events", "appointments"))
    assert problems(status, LIMITS) == ["schema not applied: missing events, appointments"]


def test_lag_at_the_limit_passes_and_above_it_fails() -> None:
    at_limit = DatabaseStatus(projections=(projection("rejections", seconds=30),))
    assert problems(at_limit, LIMITS) == []
    behind = DatabaseStatus(projections=(projection("rejections", seconds=31),))
    assert problems(behind, LIMITS) == [
        "projection rejections is 31 s behind (3 events; limit 30 s)"
    ]


def test_every_reason_is_listed() -> None:
    status = DatabaseStatus(
        projections=(projection("a", state="failed"), projection("b", seconds=45)),
        oldest_transaction=OpenTransaction(
            pid=4242, state="idle in transaction", application_name="psql", seconds=61
        ),
    )
    reasons = problems(status, LIMITS)
    assert reasons[0] == "projection a has failed: boom"
    assert reasons[1].startswith("projection b is 45 s behind")
    assert reasons[2].startswith("a transaction has been open for 61 s (pid 4242, psql")


def test_a_projection_no_runner_ever_ran_is_reported_not_failed() -> None:
    never = ProjectionStatus(
        name="rejections",
        started=False,
        state="running",
        error=None,
        position=0,
        events_behind=12,
        seconds_behind=3600,
    )
    assert problems(DatabaseStatus(projections=(never,)), LIMITS) == []


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (OSError(113, "No route to host"), "cannot connect (no route to host)"),
        (TimeoutError(), "no answer in time"),
        (asyncpg.InterfaceError("connection is closed"), "the connection was lost"),
        (
            asyncpg.CannotConnectNowError("the database system is starting up"),
            "PostgreSQL answered: the database system is starting up (SQLSTATE 57P03)",
        ),
    ],
)
def test_a_database_error_reads_in_words_without_class_names(
    error: BaseException, words: str
) -> None:
    # /ready's 503 body carries it to any caller.
    described = describe_database_error(error)
    assert described == words
    assert type(error).__name__ not in described
