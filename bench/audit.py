"""Audit queries at 1,000,000 events (issue 7 item 6, issue 4): p50 and p99 of each.

On the replay benchmark's shared log (bench/log_dataset.py), one query at a time through a
pool like the service's, each timed with the decoding of its events into models, as the
audit endpoints and CLI call them (projections/audit.py):

- call timeline: `call_timeline` of a random call (two attempts, six events);
- booking history: `booking_history` of a random booking (two events, four for the one the
  incident's attempt was handed too);
- global feed page: `feed` of 100 events after a random place in the log;
- global feed page of one type: the same with `types=["BookingRejected"]`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg

from bench import log_dataset
from bench.harness import Context, Figure, Samples
from bench.replay import shared_log
from events.database import create_pool
from events.store import Cursor, EventStore
from projections import audit

BUDGET_SECONDS = 420  # includes building the 1,000,000-event log when this runs first
TARGET_P99_MS = 50.0
PAGE = 100

Query = Callable[[], Awaitable[int]]  # returns how many events it read


async def timed(queries: list[Query]) -> list[float]:
    seconds = []
    for query in queries:
        started = time.perf_counter()
        if await query() == 0:
            raise AssertionError("an audit query found nothing where the log has events")
        seconds.append(time.perf_counter() - started)
    return seconds


def audit_kinds(
    pool: asyncpg.Pool, store: EventStore, events: int, cursors: list[Cursor], rng: random.Random
) -> dict[str, list[Query]]:
    """The audit queries on a log of `events` events, `len(cursors)` of each kind, by kind."""
    attempts = log_dataset.attempts(events)

    async def timeline(call_id: str) -> int:
        return len((await audit.call_timeline(pool, call_id)).events)

    async def history(uid: str) -> int:
        return len((await audit.booking_history(pool, uid)).events)

    async def page(after: Cursor, types: list[str] | None) -> int:
        return len((await audit.feed(store, after=after, limit=PAGE, types=types)).events)

    calls = [log_dataset.call_id(rng.randrange(attempts)) for _ in cursors]
    uids = [log_dataset.booking_uid(rng.randrange(attempts)) for _ in cursors]
    return {
        "call timeline": [functools.partial(timeline, c) for c in calls],
        "booking history": [functools.partial(history, u) for u in uids],
        f"global feed page of {PAGE}": [functools.partial(page, c, None) for c in cursors],
        f"global feed page of {PAGE}, type=BookingRejected": [
            functools.partial(page, c, ["BookingRejected"]) for c in cursors
        ],
    }


async def run(ctx: Context) -> list[Figure]:
    dsn, events = await shared_log(ctx)
    count = 200 if ctx.quick else 1_000
    samples = Samples()
    pool = await create_pool(dsn, min_size=2, max_size=10)
    try:
        store = EventStore(pool)
        names: list[str] = []
        for run_index in range(ctx.runs):
            rng = random.Random(run_index)
            positions = [rng.randrange(1, events - PAGE) for _ in range(count)]
            rows = await pool.fetch(
                "SELECT transaction_id, position FROM events WHERE position = ANY($1::bigint[])"
                " ORDER BY random()",
                positions,
            )
            cursors = [Cursor(r["transaction_id"], r["position"]) for r in rows]
            kinds = audit_kinds(pool, store, events, cursors, rng)
            for kind, queries in kinds.items():
                await timed(queries[: count // 10])  # warm-up, untimed
                name = f"{kind} at {events:,} events"
                p50, p99 = samples.latencies(name, await timed(queries))
                ctx.progress(
                    f"audit run {run_index + 1}: {kind}: p50 {p50:.2f} ms, p99 {p99:.2f} ms"
                )
            names = [f"{kind} at {events:,} events" for kind in kinds]
    finally:
        await pool.close()
    figures: list[Figure] = []
    for name in names:
        figures += samples.latency_figures(name, p99_target_ms=TARGET_P99_MS)
    return figures
