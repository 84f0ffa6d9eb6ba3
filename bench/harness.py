"""What every benchmark is given and gives back: the Context, the Figure, and timed load loops."""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.server import bench_database
from events.database import create_pool


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured quantity: every run's value, summarised as median, min and max."""

    name: str
    unit: str
    values: tuple[float, ...]
    target: float | None = None
    higher_is_better: bool = True

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def met(self) -> bool | None:
        """Whether the median meets the target; None when there is no target."""
        if self.target is None:
            return None
        if self.higher_is_better:
            return self.median >= self.target
        return self.median <= self.target


@dataclass(slots=True)
class Samples:
    """Values collected run by run, keyed by figure name, in the order first seen."""

    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def figure(
        self,
        name: str,
        unit: str,
        *,
        target: float | None = None,
        higher_is_better: bool = True,
    ) -> Figure:
        return Figure(name, unit, tuple(self.values[name]), target, higher_is_better)

    def ratio(self, name: str, numerator: str, denominator: str) -> None:
        """Record numerator/denominator run by run (paired within each run, not of medians)."""
        pairs = zip(self.values[numerator], self.values[denominator], strict=True)
        self.values[name] = [a / b for a, b in pairs]

    def latencies(self, name: str, seconds: Sequence[float]) -> tuple[float, float]:
        """Record one run's p50 and p99 (in ms) as `<name> p50` / `<name> p99`; return them."""
        p50, p99 = percentile(seconds, 0.50) * 1000, percentile(seconds, 0.99) * 1000
        self.add(f"{name} p50", p50)
        self.add(f"{name} p99", p99)
        return p50, p99

    def latency_figures(self, name: str, *, p99_target_ms: float | None) -> list[Figure]:
        """The p50 and p99 figures `latencies` recorded, the target on p99 (lower is better)."""
        return [
            self.figure(f"{name} p50", "ms", higher_is_better=False),
            self.figure(f"{name} p99", "ms", target=p99_target_ms, higher_is_better=False),
        ]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q of the values at or below."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


Build = Callable[[str], Awaitable[None]]


class SharedDatabases:
    """Databases that several benchmarks of one run read (the 1,000,000-event log): built on
    first use, dropped when the run ends."""

    def __init__(self, server: str | None = None) -> None:
        self._server = server
        self._stack = AsyncExitStack()
        self._built: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def get(self, name: str, build: Build) -> str:
        """The DSN of the shared database `name`, building it with `build(dsn)` the first time."""
        async with self._lock:
            if name not in self._built:
                if self._server is None:
                    raise RuntimeError("this Context has no server to create shared databases on")
                dsn = await self._stack.enter_async_context(bench_database(self._server))
                await build(dsn)
                self._built[name] = dsn
            return self._built[name]

    async def aclose(self) -> None:
        """Drop every shared database."""
        self._built.clear()
        await self._stack.aclose()


@dataclass(frozen=True, slots=True)
class Context:
    """The server and options a benchmark runs with. Its database is its own to fill and empty."""

    dsn: str  # the benchmark database, schema.sql applied; asyncpg/libpq URI
    libpq: dict[str, str]  # the same as libpq keywords (host, port, user, password, dbname)
    pgbench: Path
    runs: int
    quick: bool
    seconds: float  # how long each timed phase lasts
    shared: SharedDatabases = field(default_factory=SharedDatabases)

    def progress(self, message: str) -> None:
        """One progress line on stderr."""
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    async def pool(self, size: int, *, reset_sessions: bool = True) -> asyncpg.Pool:
        """A pool of exactly `size` connections, built by `events.database.create_pool`.

        `reset_sessions=False` is the service's request-path pool: no reset query on release.
        """
        return await create_pool(
            self.dsn, min_size=size, max_size=size, reset_sessions=reset_sessions
        )

    async def truncate(self, *tables: str) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            names = ", ".join(f'"{t}"' for t in tables)
            # No ANALYZE: statistics that say "empty" make the planner scan the table for the
            # store's expected-version check, and it grows by thousands of rows a second.
            # TRUNCATE leaves the size unknown, which plans the index as a live table would.
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()


Operation = Callable[[], Awaitable[int]]


async def throughput(operations: Sequence[Operation], seconds: float) -> float:
    """Run each operation in a loop on its own task for `seconds`; return units per second.

    Every operation returns how many units (events) it did. The clock stops when the last
    operation in flight finishes, so work done after the deadline is counted with its time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def drive(operation: Operation) -> int:
        done = 0
        while loop.time() < deadline:
            done += await operation()
        return done

    started = loop.time()
    counts = await asyncio.gather(*(drive(op) for op in operations))
    return sum(counts) / (loop.time() - started)


ThreadOperation = Callable[[], int]


def threaded_throughput(operations: Sequence[ThreadOperation], seconds: float) -> float:
    """`throughput` for blocking operations: one thread per operation."""
    start = threading.Barrier(len(operations) + 1)
    deadline = 0.0

    def drive(operation: ThreadOperation) -> int:
        start.wait()
        done = 0
        while time.perf_counter() < deadline:
            done += operation()
        return done

    with ThreadPoolExecutor(max_workers=len(operations)) as executor:
        futures = [executor.submit(drive, op) for op in operations]
        started = time.perf_counter()
        deadline = started + seconds
        start.wait()
        counts = [f.result() for f in futures]
    return sum(counts) / (time.perf_counter() - started)
