"""The projectors of one process, started and stopped together: what the app factory wires.

    async def projectors(app: web.Application) -> AsyncIterator[None]:
        async with run_projectors(app[POOL], app[STORE], catalog.asynchronous()) as running:
            app[PROJECTORS] = running
            yield

`/ready` and `/metrics` read `await running.lag()` and `await oldest_transaction_seconds(pool)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from events.store import EventStore
from projections.projection import Projection
from projections.runner import ProjectionLag, ProjectionRunner

# The horizon is the whole server's: a transaction with an id, in any database, holds back
# every projector until it ends (see events/reads.py).
_OLDEST_TRANSACTION = """
SELECT coalesce(extract(epoch FROM clock_timestamp() - min(xact_start)), 0)::float8
  FROM pg_stat_activity
 WHERE backend_xid IS NOT NULL
"""


async def oldest_transaction_seconds(pool: asyncpg.Pool) -> float:
    """How long the oldest transaction holding back the horizon has been open (0 if none)."""
    seconds: float = await pool.fetchval(_OLDEST_TRANSACTION)
    return seconds


class Projectors:
    """The running projectors of one process, by name."""

    def __init__(self, runners: Sequence[ProjectionRunner]) -> None:
        self._runners = {runner.name: runner for runner in runners}

    def __getitem__(self, name: str) -> ProjectionRunner:
        return self._runners[name]

    def __iter__(self) -> Iterator[ProjectionRunner]:
        return iter(self._runners.values())

    async def lag(self) -> list[ProjectionLag]:
        """The lag of every projection, in name order."""
        return [await self._runners[name].lag() for name in sorted(self._runners)]


@asynccontextmanager
async def run_projectors(
    pool: asyncpg.Pool,
    store: EventStore,
    projections: Sequence[Projection],
    *,
    batch_size: int = 500,
    poll_interval: float = 0.5,
    lock_retry: float = 1.0,
    listen: bool = True,
) -> AsyncIterator[Projectors]:
    """Run a runner for each non-inline projection until the context exits."""
    runners = [
        ProjectionRunner(
            pool,
            store,
            projection,
            batch_size=batch_size,
            poll_interval=poll_interval,
            lock_retry=lock_retry,
            listen=listen,
        )
        for projection in projections
        if not projection.inline
    ]
    for runner in runners:
        runner.start()
    try:
        yield Projectors(runners)
    finally:
        for runner in runners:
            await runner.stop()
