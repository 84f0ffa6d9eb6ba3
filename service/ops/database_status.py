"""What `/ready` and `/metrics` ask PostgreSQL: is it there, is the schema applied, how far each
projection trails the log, how old the oldest writing transaction is, what is in flight.

Every figure comes from the database, not from this process, so any process answers with the
same truth about the shared state (the projector may be running in another process).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from events import reads
from events.errors import DATABASE_ERRORS
from events.store import Connection
from projections import catalog, checkpoints

REQUIRED_TABLES = ("events", "projection_checkpoints", "appointments", "idempotency_keys")

_MISSING_TABLES = "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL"

# Only a transaction that holds a transaction id holds back the horizon every projector reads
# behind (events/reads.py); a read-only one, however long, does not.
_OLDEST_TRANSACTION = """
SELECT pid, state, application_name,
       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS seconds
  FROM pg_stat_activity
 WHERE backend_xid IS NOT NULL AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
 ORDER BY xact_start
 LIMIT 1
"""

_STARTED = "SELECT name FROM projection_checkpoints"

_IN_FLIGHT = """
SELECT count(*) FILTER (WHERE parked_at IS NULL) AS in_flight,
       count(*) FILTER (WHERE locked_at < $1 AND parked_at IS NULL) AS stale,
       count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked
  FROM idempotency_keys
 WHERE status = 'in_flight'
"""


@dataclass(frozen=True, slots=True)
class ReadyLimits:
    """Above these the service is not ready."""

    max_projection_lag_seconds: float
    max_transaction_seconds: float


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    name: str
    # False until a runner has ever run it (no checkpoint row): its lag then says "never ran".
    started: bool
    state: str
    error: str | None
    position: int
    events_behind: int
    seconds_behind: float


@dataclass(frozen=True, slots=True)
class OpenTransaction:
    pid: int
    state: str | None
    application_name: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """One look at the shared state; `error` set when PostgreSQL could not be asked."""

    error: str | None = None
    missing_tables: tuple[str, ...] = ()
    projections: tuple[ProjectionStatus, ...] = ()
    oldest_transaction: OpenTransaction | None = None
    in_flight_attempts: int = 0
    stale_in_flight_attempts: int = 0
    # Recovery gave up on these (service/booking/parking.py): an operator's job, reported
    # here and alerted on, but no reason to take the process out of the load balancer.
    parked_attempts: int = 0

    @property
    def reachable(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def problems(status: DatabaseStatus, limits: ReadyLimits) -> list[str]:
    """Why the service is not ready, in words an operator can act on; empty when ready."""
    if status.error is not None:
        return [f"database unavailable: {status.error}"]
    if status.missing_tables:
        return [f"schema not applied: missing {', '.join(status.missing_tables)}"]
    found = []
    for p in status.projections:
        if p.state == checkpoints.FAILED:
            found.append(f"projection {p.name} has failed: {p.error}")
        elif p.started and p.seconds_behind > limits.max_projection_lag_seconds:
            found.append(
                f"projection {p.name} is {p.seconds_behind:.0f} s behind ({p.events_behind} "
                f"events; limit {limits.max_projection_lag_seconds:.0f} s)"
            )
    t = status.oldest_transaction
    if t is not None and t.seconds > limits.max_transaction_seconds:
        found.append(
            f"a transaction has been open for {t.seconds:.0f} s (pid {t.pid}, "
            f"{t.application_name or 'unknown application'}, {t.state}); it holds back every "
            f"projector (limit {limits.max_transaction_seconds:.0f} s)"
        )
    return found


async def database_status(
    pool: asyncpg.Pool, *, stale_before: datetime, timeout: float = 2.0
) -> DatabaseStatus:
    """Ask PostgreSQL, within `timeout` seconds, everything `/ready` and `/metrics` report."""
    try:
        async with asyncio.timeout(timeout), pool.acquire() as conn:
            status = await _ask(conn, stale_before)
    except DATABASE_ERRORS as e:
        # Not only the database being away: whatever PostgreSQL answered instead (a schema that
        # does not fit, a missing grant) is a reason not to be ready, not a failed probe.
        return DatabaseStatus(error=describe_database_error(e))
    return status


async def _ask(conn: Connection, stale_before: datetime) -> DatabaseStatus:
    missing = tuple(r["t"] for r in await conn.fetch(_MISSING_TABLES, list(REQUIRED_TABLES)))
    if missing:
        return DatabaseStatus(missing_tables=missing)
    projections = []
    started = {r["name"] for r in await conn.fetch(_STARTED)}
    for projection in catalog.asynchronous():
        stored = await checkpoints.read(conn, projection.name)
        behind = await reads.backlog(conn, after=stored.cursor, types=projection.types)
        projections.append(
            ProjectionStatus(
                name=projection.name,
                started=projection.name in started,
                state=stored.state,
                error=stored.error,
                position=stored.cursor.position,
                events_behind=behind.events,
                seconds_behind=behind.seconds,
            )
        )
    oldest = await conn.fetchrow(_OLDEST_TRANSACTION)
    in_flight = await conn.fetchrow(_IN_FLIGHT, stale_before)
    assert in_flight is not None  # an aggregate always returns one row
    return DatabaseStatus(
        projections=tuple(projections),
        oldest_transaction=None if oldest is None else OpenTransaction(**dict(oldest)),
        in_flight_attempts=in_flight["in_flight"],
        stale_in_flight_attempts=in_flight["stale"],
        parked_attempts=in_flight["parked"],
    )


def describe_database_error(error: BaseException) -> str:
    """Why the database did not answer, in words: /ready's 503 body carries it to whoever asks,
    so no exception class names or reprs of the driver's."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError):
        return f"cannot connect ({error.strerror.lower()})" if error.strerror else "cannot connect"
    if isinstance(error, asyncpg.PostgresError):
        # PostgreSQL's own message and SQLSTATE: words already, and what an operator searches.
        return f"PostgreSQL answered: {error} (SQLSTATE {error.sqlstate})"
    if isinstance(error, asyncpg.InterfaceError):
        return "the connection was lost"
    return "the database could not be asked"
