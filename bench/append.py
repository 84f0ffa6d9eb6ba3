"""Append throughput (issue 7, item 4): EventStore.append beside bare asyncpg and pgbench.

One event per transaction at 1, 16 and 64 concurrent tasks, and 100-event batches, each task on
a stream of its own and the pool sized to the concurrency. The bare asyncpg and pgbench figures
do the same insert (same row, same payload, autocommit) without the store, so their ratio is
what the store costs. Phases run back to back within a run, in alternating order across runs.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

import asyncpg

from bench import payloads
from bench.harness import Context, Figure, Operation, Samples, throughput
from bench.pgbench import pgbench_tps
from events.store import EventStore

BUDGET_SECONDS = 240
CONCURRENCY = (1, 16, 64)
BATCH = 100
BATCH_CONCURRENCY = (1, 16)
ONE_EVENT_TARGET = 0.8  # of bare asyncpg
BATCH_TARGET = 40_000.0  # events/s
SHAPES = [(1, c) for c in CONCURRENCY] + [(BATCH, c) for c in BATCH_CONCURRENCY]  # (size, tasks)

_INSERT_ONE = """
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

# The insert bg_append_events does, without the function around it.
_INSERT_MANY = """
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
SELECT $1, $2 + n.ord, n.event_id, n.type, n.schema_version, n.data, n.metadata
  FROM unnest($3::uuid[], $4::text[], $5::integer[], $6::jsonb[], $7::jsonb[])
           WITH ORDINALITY AS n(event_id, type, schema_version, data, metadata, ord)
"""

_PGBENCH_ONE = r"""
\set v :v + 1
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
VALUES (:tag::text || :client_id, :v, gen_random_uuid(), :type, :schema_version,
        :data::jsonb, :metadata::jsonb);
"""

_PGBENCH_MANY = r"""
\set v :v + 1
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
SELECT :tag::text || :client_id, (:v - 1) * :size + g, gen_random_uuid(), :type,
       :schema_version, :data::jsonb, :metadata::jsonb
  FROM generate_series(1, :size) AS g;
"""


def store_append(store: EventStore, stream: str, *, size: int) -> Operation:
    """Append `size` new events to `stream` with the exact expected version."""
    version = 0

    async def append() -> int:
        nonlocal version
        version = await store.append(stream, payloads.new_events(size), expected_version=version)
        return size

    return append


def bare_insert(pool: asyncpg.Pool, stream: str, *, size: int) -> Operation:
    """The same rows through a plain INSERT, payloads already encoded: the driver's ceiling."""
    version = 0
    types = [payloads.TYPE] * size
    schema_versions = [payloads.SCHEMA_VERSION] * size
    data = [payloads.DATA] * size
    metadata = [payloads.METADATA_JSON] * size

    async def insert_one() -> int:
        nonlocal version
        version += 1
        await pool.execute(
            _INSERT_ONE,
            stream,
            version,
            uuid.uuid4(),
            payloads.TYPE,
            payloads.SCHEMA_VERSION,
            payloads.DATA,
            payloads.METADATA_JSON,
        )
        return 1

    async def insert_many() -> int:
        nonlocal version
        ids = [uuid.uuid4() for _ in range(size)]
        await pool.execute(
            _INSERT_MANY, stream, version, ids, types, schema_versions, data, metadata
        )
        version += size
        return size

    return insert_one if size == 1 else insert_many


async def measure(ctx: Context, make: Callable[[str], Operation], tag: str, tasks: int) -> float:
    """Events/s of `tasks` tasks, each on its stream, after a short untimed warm-up."""
    warm = [make(f"{tag}-warm-{i}") for i in range(tasks)]
    await throughput(warm, min(0.3, ctx.seconds / 4))
    return await throughput([make(f"{tag}-{i}") for i in range(tasks)], ctx.seconds)


async def pgbench_events(ctx: Context, tag: str, clients: int, size: int) -> float:
    script = _PGBENCH_ONE if size == 1 else _PGBENCH_MANY
    variables = {
        "v": "0",
        "size": str(size),
        "tag": f"{tag}-",
        "type": payloads.TYPE,
        "schema_version": str(payloads.SCHEMA_VERSION),
        "data": payloads.DATA,
        "metadata": payloads.METADATA_JSON,
    }
    return size * await pgbench_tps(ctx, script, clients=clients, variables=variables)


STORE, BARE, PGBENCH = "EventStore.append", "bare asyncpg", "pgbench"


async def measure_variant(ctx: Context, variant: str, tag: str, size: int, tasks: int) -> float:
    """Events/s of one variant; the pool (sized to the tasks) is closed before pgbench runs."""
    if variant == PGBENCH:
        return await pgbench_events(ctx, tag, tasks, size)
    pool = await ctx.pool(tasks)
    try:
        if variant == STORE:
            make = functools.partial(store_append, EventStore(pool), size=size)
        else:
            make = functools.partial(bare_insert, pool, size=size)
        return await measure(ctx, make, tag, tasks)
    finally:
        await pool.close()


async def one_run(ctx: Context, run: int, samples: Samples) -> None:
    await ctx.truncate("events")
    for size, tasks in SHAPES:
        label = _label(size, tasks)
        # Alternate the order so that neither side always meets the fuller table.
        for variant in (STORE, BARE, PGBENCH) if run % 2 == 0 else (PGBENCH, BARE, STORE):
            tag = f"{variant.split()[0]}-r{run}-{size}x{tasks}"
            rate = await measure_variant(ctx, variant, tag, size, tasks)
            samples.add(f"{label}: {variant}", rate)
            ctx.progress(f"append run {run + 1}: {label}: {variant}: {rate:,.0f} events/s")


def _label(size: int, tasks: int) -> str:
    what = "1 event/tx" if size == 1 else f"{size}-event batches"
    return f"{what}, {tasks} {'task' if tasks == 1 else 'tasks'}"


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    for run_index in range(ctx.runs):
        await one_run(ctx, run_index, samples)
    figures: list[Figure] = []
    for size, tasks in SHAPES:
        label = _label(size, tasks)
        ours, bare, pg = (f"{label}: {v}" for v in (STORE, BARE, PGBENCH))
        samples.ratio(f"{label}: append / bare asyncpg", ours, bare)
        samples.ratio(f"{label}: append / pgbench", ours, pg)
        figures += [
            samples.figure(ours, "events/s", target=BATCH_TARGET if size > 1 else None),
            samples.figure(bare, "events/s"),
            samples.figure(pg, "events/s"),
            samples.figure(
                f"{label}: append / bare asyncpg",
                "ratio",
                target=ONE_EVENT_TARGET if size == 1 else None,
            ),
            samples.figure(f"{label}: append / pgbench", "ratio"),
        ]
    return figures
