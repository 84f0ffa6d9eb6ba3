"""Replay (issue 16 item 1): rebuild each projection from the 1,000,000-event log and from a
second log where one attempt in two is refused.

The logs are bench/log_dataset.py's (one attempt in five refused, shared with the audit
benchmark; and one in two), built once per `python -m bench` run. Each run times
`projections.rebuild.rebuild` as `booking-guard replay` runs it: read the log in batches of
10,000 behind the horizon, fill the twin(s), build the indexes, swap in. Per projection and log:
the log's events per second of rebuild (target 100,000: the whole log is what a rebuild has to
get through) and the events of its own types per second (target 30,000). `replay, all
projections`: every projection of the catalog with `rebuild_all`, as the command runs them (at
once: the pool has the 4 connections they need together).

Side by side in each run: the appointments rebuild with every event folded in memory
(`appointments_replay.FOLD_ONLY`, the path before lone confirmations were written in
PostgreSQL), and the ratio of the two under the same load; and (`--quick` only: it manages
~1,000 events/s) the rebuild before the in-memory fold (one plpgsql call per event through
executemany, `replay_batch`). Each run checks the rebuilt tables' row counts.
"""

from __future__ import annotations

import dataclasses
import time

import asyncpg

from bench import log_dataset
from bench.harness import Context, Figure, Samples
from events.database import create_pool
from projections import appointments_replay, catalog, rejections
from projections.rebuild import rebuild, rebuild_all

BUDGET_SECONDS = 900  # includes building both 1,000,000-event logs when this runs first
TARGET = 100_000.0  # log events/s
OWN_TARGET = 30_000.0  # the projection's own events/s
LOGS = ((log_dataset.REFUSED_EVERY, "1 in 5 refused"), (2, "1 in 2 refused"))

# The appointments rebuild as it was: every event through the SQL functions.
_PER_EVENT_SQL = dataclasses.replace(
    appointments_replay.PROJECTION, replayer=None, fill_indexes=None
)


async def shared_log(
    ctx: Context, refused_every: int = log_dataset.REFUSED_EVERY
) -> tuple[str, int]:
    """The DSN of this run's shared log and how many events it holds."""
    events = log_dataset.size(ctx.quick)

    async def build(dsn: str) -> None:
        ctx.progress(
            f"log dataset: generating {events:,} events, 1 attempt in {refused_every} refused"
        )
        await log_dataset.load(dsn, events, ctx.progress, refused_every=refused_every)

    name = (
        f"log-{events}"
        if refused_every == log_dataset.REFUSED_EVERY
        else f"log-{events}-r{refused_every}"
    )
    dsn = await ctx.shared.get(name, build)
    conn = await asyncpg.connect(dsn)
    try:
        stored: int = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    return dsn, stored


async def run(ctx: Context) -> list[Figure]:
    figures: list[Figure] = []
    for refused_every, label in LOGS:
        figures += await _one_log(ctx, refused_every, label)
    return figures


async def _one_log(ctx: Context, refused_every: int, label: str) -> list[Figure]:
    dsn, events = await shared_log(ctx, refused_every)
    attempts = log_dataset.attempts(events)
    expected = {
        "appointments": log_dataset.confirmed(events, refused_every),
        "rejections": attempts // refused_every,
    }
    samples = Samples()
    log = f"{events:,} events, {label}"
    names: list[tuple[str, str]] = []
    pool = await create_pool(dsn, min_size=4, max_size=4)
    try:
        for run_index in range(ctx.runs):
            chosen = [
                ("appointments", appointments_replay.PROJECTION),
                ("appointments, fold only (before)", appointments_replay.FOLD_ONLY),
                ("appointments, per-event SQL (before)", _PER_EVENT_SQL),
                ("rejections", rejections.PROJECTION),
            ]
            if not ctx.quick:
                del chosen[2]  # ~1,000 events/s: 1,000,000 would take a quarter of an hour
            for title, projection in chosen:
                result = await rebuild(pool, projection)
                table = projection.table
                rows = await pool.fetchval(f"SELECT count(*) FROM {table}")
                if rows != expected[table]:
                    raise AssertionError(f"rebuilt {rows} {table}, expected {expected[table]}")
                log_rate = f"replay {title} ({log}): log events/s"
                own = f"replay {title} ({log}): its own events/s"
                samples.add(log_rate, events / result.seconds)
                samples.add(own, result.rate)
                if run_index == 0:
                    names.append((log_rate, own))
                ctx.progress(
                    f"replay {title} ({label}) run {run_index + 1}: {result.seconds:.2f} s,"
                    f" {events / result.seconds:,.0f} log events/s,"
                    f" {result.events:,} own ({result.rate:,.0f}/s)"
                )
            started = time.perf_counter()
            await rebuild_all(pool, list(catalog.all_projections().values()))
            seconds = time.perf_counter() - started
            samples.add(
                f"booking-guard replay, all projections ({log}): log events/s", events / seconds
            )
            samples.add(f"booking-guard replay, all projections ({log}): seconds", seconds)
        samples.ratio(
            f"replay appointments ({log}): split ÷ fold only, same run",
            f"replay appointments ({log}): log events/s",
            f"replay appointments, fold only (before) ({log}): log events/s",
        )
        if ctx.quick:
            samples.ratio(
                f"replay appointments ({log}): fold ÷ per-event SQL, same run",
                f"replay appointments ({log}): log events/s",
                f"replay appointments, per-event SQL (before) ({log}): log events/s",
            )
    finally:
        await pool.close()
    figures: list[Figure] = []
    for log_rate, own in names:
        figures.append(samples.figure(log_rate, "events/s", target=TARGET))
        figures.append(samples.figure(own, "events/s", target=OWN_TARGET))
    figures.append(samples.figure(f"replay appointments ({log}): split ÷ fold only, same run", "x"))
    if ctx.quick:
        figures.append(
            samples.figure(f"replay appointments ({log}): fold ÷ per-event SQL, same run", "x")
        )
    figures.append(
        samples.figure(
            f"booking-guard replay, all projections ({log}): log events/s",
            "events/s",
            target=TARGET,
        )
    )
    figures.append(
        samples.figure(
            f"booking-guard replay, all projections ({log}): seconds", "s", higher_is_better=False
        )
    )
    return figures
