"""What the subscribers' wake-up costs an append: `--only append_wakeup` (an extra).

`EventStore.append` sends `NOTIFY bg_events` after each commit, from a task, at most one in
flight and one more if appends landed meanwhile. That is a second statement (and the pool's
reset query) for every append that does not share it, and it takes a pool connection from the
next append. Beside today's store and bare asyncpg (bench/append.py's), two variants built by
overriding `wake_subscribers` in a subclass:

- `no wake-up`: subscribers rely on polling alone (the lower bound of what a wake-up costs);
- `wake-up at most every 5 ms`: the same NOTIFY, sent 5 ms after the first append that needs
  it, shared by every append of those 5 ms;
- `wake-up on a connection of its own`: today's coalescing, on a dedicated connection;
- `both`: at most one NOTIFY every 5 ms, on a dedicated connection.

One event per append, 1, 16 and 64 tasks, a stream per task, the pool sized to the tasks.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import asyncpg

from bench.append import bare_insert, measure, store_append
from bench.harness import Context, Figure, Samples
from events.store import EventStore

BUDGET_SECONDS = 150
CONCURRENCY = (1, 16, 64)
DEBOUNCE_SECONDS = 0.005
TARGET = 0.8  # of bare asyncpg


class PollingOnlyStore(EventStore):
    """No NOTIFY at all: subscribers find new events by polling."""

    def wake_subscribers(self) -> None:
        pass


class DebouncedStore(EventStore):
    """One NOTIFY at most every DEBOUNCE_SECONDS, shared by the appends in between."""

    _timer: asyncio.TimerHandle | None = None

    def wake_subscribers(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(DEBOUNCE_SECONDS, self._wake_now)

    def _wake_now(self) -> None:
        self._timer = None
        super().wake_subscribers()


class OwnConnectionStore(EventStore):
    """Today's coalescing (one NOTIFY in flight, one more if appends landed meanwhile), sent on
    a connection of its own: no pool connection taken from the appends, no reset query."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        super().__init__(pool)
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._sending: asyncio.Task[None] | None = None
        self._again = False

    def wake_subscribers(self) -> None:
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send())
        else:
            self._again = True

    async def _send(self) -> None:
        if self._conn is None:
            self._conn = await asyncpg.connect(self._dsn)
        while True:
            self._again = False
            await self._conn.execute("SELECT pg_notify('bg_events', '')")
            if not self._again:
                return

    async def close(self) -> None:
        if self._sending is not None:
            await asyncio.gather(self._sending, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()
        await super().close()


class DebouncedOwnConnectionStore(OwnConnectionStore):
    """Both: at most one NOTIFY every DEBOUNCE_SECONDS, on a connection of its own."""

    def __init__(self, pool: asyncpg.Pool, dsn: str) -> None:
        super().__init__(pool, dsn)
        self._timer: asyncio.TimerHandle | None = None

    def wake_subscribers(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(DEBOUNCE_SECONDS, self._wake_now)

    def _wake_now(self) -> None:
        self._timer = None
        super().wake_subscribers()


MakeStore = Callable[[asyncpg.Pool, str], EventStore]  # (pool, dsn)
VARIANTS: dict[str, MakeStore | None] = {
    "EventStore.append today": lambda pool, dsn: EventStore(pool),
    "no wake-up": lambda pool, dsn: PollingOnlyStore(pool),
    "wake-up at most every 5 ms": lambda pool, dsn: DebouncedStore(pool),
    "wake-up on a connection of its own": OwnConnectionStore,
    "both: every 5 ms at most, on its own connection": DebouncedOwnConnectionStore,
    "bare asyncpg": None,
}


async def rate(ctx: Context, variant: str, tasks: int, tag: str) -> float:
    pool = await ctx.pool(tasks)
    try:
        make_store = VARIANTS[variant]
        if make_store is None:
            return await measure(ctx, functools.partial(bare_insert, pool, size=1), tag, tasks)
        store = make_store(pool, ctx.dsn)
        result = await measure(ctx, functools.partial(store_append, store, size=1), tag, tasks)
        await asyncio.sleep(2 * DEBOUNCE_SECONDS)  # let a pending wake-up go before closing
        await store.close()
        return result
    finally:
        await pool.close()


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    names = list(VARIANTS)
    for run_index in range(ctx.runs):
        await ctx.truncate("events")
        for tasks in CONCURRENCY:
            for variant in names if run_index % 2 == 0 else names[::-1]:
                tag = f"w{run_index}-{tasks}-{names.index(variant)}"
                value = await rate(ctx, variant, tasks, tag)
                samples.add(f"1 event/tx, {tasks} tasks: {variant}", value)
                ctx.progress(
                    f"append_wakeup run {run_index + 1}: {tasks} tasks: {variant}: {value:,.0f}/s"
                )
    figures: list[Figure] = []
    for tasks in CONCURRENCY:
        label = f"1 event/tx, {tasks} tasks"
        figures += [samples.figure(f"{label}: {v}", "events/s") for v in names]
        for variant in names[:-1]:
            ratio = f"{label}: {variant} / bare asyncpg"
            samples.ratio(ratio, f"{label}: {variant}", f"{label}: bare asyncpg")
            figures.append(samples.figure(ratio, "ratio", target=TARGET))
    return figures
