"""The proposed append path end to end, beside today's: an extra, `--only append_proposed`.

Today: EventStore.append on schema.sql's bg_append_events. Proposed: bench/proposed_append.sql
installed over it in this benchmark's own database, with the wake-up NOTIFY sent by the store
after commit and coalesced (at most one in flight per process, one more if appends landed
meanwhile), as `PostCommitNotify` below does around EventStore. Also measured: the same without
the pool's reset query on release (`create_pool(..., reset=...)`), and bare asyncpg.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from bench.append import BARE, ONE_EVENT_TARGET, bare_insert, measure, store_append
from bench.harness import Context, Figure, Samples
from events.database import init_connection, schema_sql
from events.models import NewEvent
from events.store import Connection, EventStore, ExpectedVersion

BUDGET_SECONDS = 300
CONCURRENCY = (1, 16, 64)
PROPOSED_SQL = Path(__file__).with_name("proposed_append.sql")
_NOTIFY = "SELECT pg_notify('bg_events', '')"

TODAY = "EventStore.append today"
PROPOSED = "proposed append"
PROPOSED_NO_RESET = "proposed append, pool without reset"
BARE_NO_RESET = "bare asyncpg, pool without reset"
VARIANTS = (TODAY, PROPOSED, PROPOSED_NO_RESET, BARE, BARE_NO_RESET)


class PostCommitNotify(EventStore):
    """EventStore whose append wakes subscribers after commit, one NOTIFY per burst."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self._notify_pool = pool
        self._notifying: asyncio.Task[None] | None = None
        self._again = False

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | ExpectedVersion,
        connection: Connection | None = None,
    ) -> int:
        version = await super().append(
            stream_id, events, expected_version=expected_version, connection=connection
        )
        if connection is not None:
            # The caller's transaction: notify inside it, so the wake-up comes at its commit.
            await connection.execute(_NOTIFY)
        elif self._notifying is None or self._notifying.done():
            self._notifying = asyncio.create_task(self._notify())
        else:
            self._again = True
        return version

    async def _notify(self) -> None:
        while True:
            self._again = False
            await self._notify_pool.execute(_NOTIFY)
            if not self._again:
                return

    async def close(self) -> None:
        if self._notifying is not None:
            await self._notifying


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on release."""


async def pool_without_reset(ctx: Context, size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        ctx.dsn, min_size=size, max_size=size, init=init_connection, reset=_no_reset
    )


async def measure_variant(ctx: Context, variant: str, tag: str, tasks: int) -> float:
    if variant in (PROPOSED_NO_RESET, BARE_NO_RESET):
        pool = await pool_without_reset(ctx, tasks)
    else:
        pool = await ctx.pool(tasks)
    store: EventStore | None = None
    try:
        if variant in (BARE, BARE_NO_RESET):
            make = functools.partial(bare_insert, pool, size=1)
        else:
            store = EventStore(pool) if variant == TODAY else PostCommitNotify(pool)
            make = functools.partial(store_append, store, size=1)
        return await measure(ctx, make, tag, tasks)
    finally:
        if isinstance(store, PostCommitNotify):
            await store.close()
        await pool.close()


async def install(ctx: Context, *, proposed: bool) -> None:
    """Put the proposed (or schema.sql's) bg_append_events in this benchmark's database."""
    conn = await asyncpg.connect(ctx.dsn)
    try:
        await conn.execute(PROPOSED_SQL.read_text() if proposed else schema_sql())
    finally:
        await conn.close()


def _label(tasks: int) -> str:
    return f"1 event/tx, {tasks} {'task' if tasks == 1 else 'tasks'}"


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    for run_index in range(ctx.runs):
        await ctx.truncate("events")
        for tasks in CONCURRENCY:
            for variant in VARIANTS if run_index % 2 == 0 else reversed(VARIANTS):
                await install(ctx, proposed=variant != TODAY)
                tag = f"proposed-r{run_index}-{tasks}-{VARIANTS.index(variant)}"
                rate = await measure_variant(ctx, variant, tag, tasks)
                name = f"{_label(tasks)}: {variant}"
                samples.add(name, rate)
                ctx.progress(f"append_proposed run {run_index + 1}: {name}: {rate:,.0f}/s")
    figures = []
    for tasks in CONCURRENCY:
        label = _label(tasks)
        for variant in VARIANTS:
            figures.append(samples.figure(f"{label}: {variant}", "events/s"))
        # Like with like: each append variant over bare asyncpg on the same kind of pool.
        for variant, bare in ((TODAY, BARE), (PROPOSED, BARE), (PROPOSED_NO_RESET, BARE_NO_RESET)):
            name = f"{label}: {variant} / {bare}"
            samples.ratio(name, f"{label}: {variant}", f"{label}: {bare}")
            figures.append(samples.figure(name, "ratio", target=ONE_EVENT_TARGET))
    return figures
