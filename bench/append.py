"""Append throughput (issue 7, item 4): EventStore.append beside bare asyncpg and pgbench.

One event per transaction at 1, 16 and 64 concurrent tasks, and 100-event batches, each task on
a stream of its own and the pool sized to the concurrency and built as the service's request path
builds its own (no reset query on release). The bare asyncpg and pgbench figures do the same
insert (same row, same payload, autocommit) without the store, so their ratio is what the store
costs: the expected-version check, the pydantic encoding, the wake-up of subscribers. Batches
also run a stricter bare insert, its JSON as text[] as the store sends it (issue 16). The store
and the bare inserts alternate in six slices per shape and run (SLICES); pgbench runs after them.
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
BATCH_RATIO_TARGET = 0.9  # of bare asyncpg's unnest insert, at 1 and 16 tasks (issue 16 item 4)
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

# The same, with the JSON sent as text[] and cast in the statement, as EventStore.append sends a
# batch since issue 16: asyncpg encodes text[] in C, while jsonb[] calls the pool's Python codec
# once per element. A stricter ceiling than _INSERT_MANY, reported beside it (no target).
_INSERT_MANY_TEXT = """
INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
SELECT $1, $2 + n.ord, n.event_id, n.type, n.schema_version, n.data::jsonb, n.metadata::jsonb
  FROM unnest($3::uuid[], $4::text[], $5::integer[], $6::text[], $7::text[])
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


def bare_insert(
    pool: asyncpg.Pool, stream: str, *, size: int, many: str = _INSERT_MANY
) -> Operation:
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
        await pool.execute(many, stream, version, ids, types, schema_versions, data, metadata)
        version += size
        return size

    return insert_one if size == 1 else insert_many


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


async def warm_up(ctx: Context, make: Callable[[str], Operation], tag: str, tasks: int) -> None:
    """A short untimed run of `tasks` tasks, each on a stream of its own."""
    await throughput([make(f"{tag}-warm-{i}") for i in range(tasks)], min(0.3, ctx.seconds / 4))


async def measure(ctx: Context, make: Callable[[str], Operation], tag: str, tasks: int) -> float:
    """Events/s of `tasks` tasks, each on its stream, after a short untimed warm-up."""
    await warm_up(ctx, make, tag, tasks)
    return await throughput([make(f"{tag}-{i}") for i in range(tasks)], ctx.seconds)


STORE, BARE, PGBENCH = "EventStore.append", "bare asyncpg", "pgbench"
BARE_TEXT = "bare asyncpg, JSON as text[]"  # batches only

# The store and bare asyncpg take turns in short slices on one pool, so that whatever else the
# machine does in a run (other processes, checkpoints, autovacuum) falls on both alike.
SLICES = 6


async def measure_pair(ctx: Context, tag: str, size: int, tasks: int) -> dict[str, float]:
    """Events/s of the store and of bare asyncpg, alternating slice by slice."""
    pool = await ctx.pool(tasks, reset_sessions=False)  # as the service's request path
    store = EventStore(pool)
    makers: dict[str, Callable[[str], Operation]] = {
        STORE: functools.partial(store_append, store, size=size),
        BARE: functools.partial(bare_insert, pool, size=size),
    }
    if size > 1:
        makers[BARE_TEXT] = functools.partial(bare_insert, pool, size=size, many=_INSERT_MANY_TEXT)
    rates: dict[str, list[float]] = {variant: [] for variant in makers}
    try:
        short = {variant: f"v{i}" for i, variant in enumerate(makers)}  # in stream names
        for variant, make in makers.items():
            await warm_up(ctx, make, f"{tag}-{short[variant]}", tasks)
        slice_seconds = 2 * ctx.seconds / SLICES
        for n in range(SLICES):
            for variant in list(makers) if n % 2 == 0 else list(reversed(makers)):
                streams = [f"{tag}-{short[variant]}-{n}-{i}" for i in range(tasks)]
                operations = [makers[variant](stream) for stream in streams]
                rates[variant].append(await throughput(operations, slice_seconds))
        await store.close()
    finally:
        await pool.close()
    return {variant: sum(r) / len(r) for variant, r in rates.items()}


async def one_run(ctx: Context, run: int, samples: Samples) -> None:
    await ctx.truncate("events")
    for size, tasks in SHAPES:
        label = _label(size, tasks)
        tag = f"r{run}-{size}x{tasks}"
        rates = await measure_pair(ctx, tag, size, tasks)
        rates[PGBENCH] = await pgbench_events(ctx, f"pgbench-{tag}", tasks, size)
        for variant, rate in rates.items():
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
                target=ONE_EVENT_TARGET if size == 1 else BATCH_RATIO_TARGET,
            ),
            samples.figure(f"{label}: append / pgbench", "ratio"),
        ]
        if size > 1:
            text = f"{label}: {BARE_TEXT}"
            samples.ratio(f"{label}: append / bare asyncpg, text[]", ours, text)
            figures += [
                samples.figure(text, "events/s"),
                samples.figure(f"{label}: append / bare asyncpg, text[]", "ratio"),
            ]
    return figures
