"""Replay (issue 7 item 5, issue 4's "done when"): rebuild appointments from 1,000,000 events.

The log is bench/log_dataset.py's, built once per `python -m bench` run and shared with the
audit benchmark. Each run times `projections.rebuild.rebuild` of the appointments projection as
`booking-guard replay` runs it: read the log in batches of 10,000 behind the horizon, fill an
unlogged twin with COPY, build its indexes, swap it in. Figures: the log's events per second of
rebuild (the target: the whole log is what a rebuild has to get through), the events of the
projection's own types it applied per second (the figure `booking-guard replay` prints), and
the seconds. Each run checks that the rebuilt table has one row per confirmed attempt.
"""

from __future__ import annotations

import asyncpg

from bench import log_dataset
from bench.harness import Context, Figure, Samples
from events.database import create_pool
from projections import appointments_replay
from projections.rebuild import rebuild

BUDGET_SECONDS = 420  # includes building the 1,000,000-event log when this runs first
TARGET = 50_000.0  # log events/s


async def shared_log(ctx: Context) -> tuple[str, int]:
    """The DSN of this run's shared log and how many events it holds."""
    events = log_dataset.size(ctx.quick)

    async def build(dsn: str) -> None:
        ctx.progress(f"log dataset: generating {events:,} events")
        await log_dataset.load(dsn, events, ctx.progress)

    dsn = await ctx.shared.get(f"log-{events}", build)
    conn = await asyncpg.connect(dsn)
    try:
        stored: int = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    return dsn, stored


async def run(ctx: Context) -> list[Figure]:
    dsn, events = await shared_log(ctx)
    samples = Samples()
    log_rate = f"rebuild appointments from {events:,} events: log events/s"
    applied = f"rebuild appointments from {events:,} events: its own events applied/s"
    seconds = f"rebuild appointments from {events:,} events: seconds"
    pool = await create_pool(dsn, min_size=3, max_size=3)
    try:
        for run_index in range(ctx.runs):
            result = await rebuild(pool, appointments_replay.PROJECTION)
            rows = await pool.fetchval("SELECT count(*) FROM appointments")
            if rows != log_dataset.confirmed(events):
                raise AssertionError(f"rebuilt {rows} appointments, expected the confirmed ones")
            samples.add(log_rate, events / result.seconds)
            samples.add(applied, result.rate)
            samples.add(seconds, result.seconds)
            ctx.progress(
                f"replay run {run_index + 1}: {result.seconds:.1f} s,"
                f" {events / result.seconds:,.0f} log events/s,"
                f" {result.events:,} applied ({result.rate:,.0f}/s)"
            )
    finally:
        await pool.close()
    return [
        samples.figure(log_rate, "events/s", target=TARGET),
        samples.figure(applied, "events/s"),
        samples.figure(seconds, "s", higher_is_better=False),
    ]
