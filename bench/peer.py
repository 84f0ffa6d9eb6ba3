"""The peer (issue 7, item 7): the `eventsourcing` library's PostgreSQL persistence beside ours.

Same server, same payload (the BookingRequested of bench/payloads.py, serialised by pydantic on
both sides for every write and decoded into the model on every read). Theirs is driven through
its PostgresApplicationRecorder (built by PostgresFactory from POSTGRES_* settings), the layer
that matches EventStore: no aggregates, no mapper. It is synchronous (psycopg), so its
concurrent writers are threads, each with its own originator and a pool sized to the threads.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
import uuid
from typing import Literal

from eventsourcing.persistence import ApplicationRecorder, StoredEvent
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment

from bench import payloads
from bench.append import measure, store_append
from bench.harness import Context, Figure, Samples, threaded_throughput
from events import reads
from events.booking import BookingRequested
from events.store import START, Cursor, EventStore

BUDGET_SECONDS = 180
CONCURRENCY = (1, 16, 64)
TARGET_AT = 16  # writers; ours must reach 5 times theirs there
TARGET_RATIO = 5.0
PAGE = 1000  # events per read, both sides
READ_TARGET = 100_000.0  # events/s read and decoded (issue 16 item 6)
READ_TARGET_RATIO = 4.0  # times theirs
BATCH = 100  # events per append when loading the read test
TOPIC = "bench.payloads:BookingRequested"

OURS, THEIRS = "booking-guard", "eventsourcing"
THEIR_TABLE = "bench_events"  # PostgresFactory names it <environment name>_events


def their_factory(ctx: Context, pool_size: int) -> PostgresFactory:
    """Their infrastructure as their docs configure it: POSTGRES_* settings."""
    env = Environment(
        "bench",
        {
            "POSTGRES_DBNAME": ctx.libpq["dbname"],
            "POSTGRES_HOST": ctx.libpq["host"],
            "POSTGRES_PORT": ctx.libpq["port"],
            "POSTGRES_USER": ctx.libpq["user"],
            "POSTGRES_PASSWORD": ctx.libpq["password"],
            "POSTGRES_POOL_SIZE": str(pool_size),
            "POSTGRES_MAX_OVERFLOW": "0",
        },
    )
    return PostgresFactory(env)


def their_batch(recorder: ApplicationRecorder, size: int) -> None:
    """One transaction of `size` events for a new originator."""
    originator = uuid.uuid4()
    state = payloads.EVENT.__pydantic_serializer__.to_json(payloads.EVENT)
    recorder.insert_events(
        [StoredEvent(originator, version, TOPIC, state) for version in range(1, size + 1)]
    )


class TheirWriter:
    """One writer thread's originator: appends one event per transaction, version after version."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self._recorder = recorder
        self._originator = uuid.uuid4()
        self._version = 0

    def __call__(self) -> int:
        self._version += 1
        state = payloads.EVENT.__pydantic_serializer__.to_json(payloads.EVENT)
        event = StoredEvent(self._originator, self._version, TOPIC, state)
        self._recorder.insert_events([event])
        return 1


def their_throughput(ctx: Context, writers: int) -> float:
    factory = their_factory(ctx, writers)
    try:
        recorder = factory.application_recorder()
        warm = min(0.3, ctx.seconds / 4)
        threaded_throughput([TheirWriter(recorder) for _ in range(writers)], warm)
        return threaded_throughput([TheirWriter(recorder) for _ in range(writers)], ctx.seconds)
    finally:
        factory.close()


async def our_throughput(ctx: Context, writers: int, tag: str) -> float:
    pool = await ctx.pool(writers)
    try:
        make = functools.partial(store_append, EventStore(pool), size=1)
        return await measure(ctx, make, tag, writers)
    finally:
        await pool.close()


async def load_for_reading(ctx: Context, count: int) -> None:
    """`count` identical events on each side, in batches, before the read test."""
    pool = await ctx.pool(1)
    try:
        store = EventStore(pool)
        for _ in range(count // BATCH):
            await store.append(
                f"read-{uuid.uuid4()}", payloads.new_events(BATCH), expected_version=0
            )
    finally:
        await pool.close()
    factory = their_factory(ctx, 1)
    try:
        recorder = factory.application_recorder()
        for _ in range(count // BATCH):
            await asyncio.to_thread(their_batch, recorder, BATCH)
    finally:
        factory.close()


Reading = Literal["pages", "read_all", "floor"]


async def our_read_all(ctx: Context, how: Reading) -> float:
    """Events/s of reading every event in pages of PAGE, decoded into the model: `pages` by
    `EventStore.read_all_pages` (the next page fetched while this one decodes), `read_all` by
    one `EventStore.read_all` call a page, `floor` the same pages fetched as the same rows and
    not decoded at all: what reading costs before pydantic does anything."""
    pool = await ctx.pool(1)
    try:
        store = EventStore(pool)
        loop = asyncio.get_running_loop()
        started, after, count = loop.time(), START, 0
        if how == "pages":
            async with store.read_all_pages(limit=PAGE) as pages:
                async for page in pages:
                    count += len(page)
            return count / (loop.time() - started)
        while True:
            if how == "floor":
                rows = await pool.fetch(reads._READ_ALL, after.transaction_id, after.position, PAGE)
                if not rows:
                    break
                count += len(rows)
                after = Cursor(int(rows[-1]["transaction_id"]), rows[-1]["position"])
                continue
            page = await store.read_all(after=after, limit=PAGE)
            if not page:
                break
            count += len(page)
            after = Cursor(page[-1].transaction_id, page[-1].position)
        return count / (loop.time() - started)
    finally:
        await pool.close()


async def models_alone(ctx: Context) -> float:
    """Events/s of pydantic alone: every event's stored data (fetched beforehand, untimed)
    validated into its model by `model_validate_json`, as both sides do per event. No reader
    that builds these models with pydantic can beat it, whatever it does about I/O."""
    pool = await ctx.pool(1)
    try:
        texts: list[str] = [row[0] for row in await pool.fetch(_DATA_TEXT)]
    finally:
        await pool.close()
    started, count = time.perf_counter(), 0
    for first in range(0, len(texts), PAGE):  # a page's models alive at a time, as readers keep
        gc.disable()  # as read_all builds a page (events/reads.py), so this stays its floor
        try:
            page = [BookingRequested.model_validate_json(t) for t in texts[first : first + PAGE]]
        finally:
            gc.enable()
        count += len(page)
    return count / (time.perf_counter() - started)


_DATA_TEXT = "SELECT data::text FROM events ORDER BY position"


def their_read_all(ctx: Context) -> float:
    """Events/s of reading every notification in pages, the state decoded into the model."""
    factory = their_factory(ctx, 1)
    try:
        recorder = factory.application_recorder()
        started, start, count = time.perf_counter(), 1, 0
        while page := recorder.select_notifications(start=start, limit=PAGE):
            count += len([BookingRequested.model_validate_json(n.state) for n in page])
            start = page[-1].id + 1
        return count / (time.perf_counter() - started)
    finally:
        factory.close()


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    factory = their_factory(ctx, 1)
    try:
        factory.application_recorder()  # creates their table
    finally:
        factory.close()
    labels = [f"append 1 event/tx, {n} {'writer' if n == 1 else 'writers'}" for n in CONCURRENCY]
    for run_index in range(ctx.runs):
        await ctx.truncate("events", THEIR_TABLE)
        for writers, label in zip(CONCURRENCY, labels, strict=True):
            sides = (OURS, THEIRS) if run_index % 2 == 0 else (THEIRS, OURS)
            for side in sides:
                if side == OURS:
                    rate = await our_throughput(ctx, writers, f"peer-r{run_index}-{writers}")
                else:
                    rate = await asyncio.to_thread(their_throughput, ctx, writers)
                samples.add(f"{label}: {side}", rate)
                ctx.progress(f"peer run {run_index + 1}: {label}: {side}: {rate:,.0f} events/s")
    for label in labels:
        samples.ratio(f"{label}: ours / theirs", f"{label}: {OURS}", f"{label}: {THEIRS}")

    count = 10_000 if ctx.quick else 50_000
    await ctx.truncate("events", THEIR_TABLE)
    ctx.progress(f"peer: loading {count:,} events on each side for the read test")
    await load_for_reading(ctx, count)
    label = f"read all {count:,} events, pages of {PAGE}"
    one_call = f"{OURS}: read_all, one call a page"
    validating = f"{OURS}: floor, rows fetched without models"
    pydantic = "pydantic alone: model_validate_json of each event, no I/O"
    for run_index in range(ctx.runs):
        # Ours by read_all_pages (the figure with the targets) and page by page, alternating.
        if run_index % 2 == 0:
            ours, single = await our_read_all(ctx, "pages"), await our_read_all(ctx, "read_all")
        else:
            single, ours = await our_read_all(ctx, "read_all"), await our_read_all(ctx, "pages")
        before = await our_read_all(ctx, "floor")
        theirs = await asyncio.to_thread(their_read_all, ctx)
        alone = await models_alone(ctx)
        samples.add(f"{label}: {OURS}", ours)
        samples.add(f"{label}: {one_call}", single)
        samples.add(f"{label}: {validating}", before)
        samples.add(f"{label}: {THEIRS}", theirs)
        samples.add(f"{label}: {pydantic}", alone)
        ctx.progress(
            f"peer run {run_index + 1}: {label}: ours {ours:,.0f} (read_all {single:,.0f}),"
            f" floor {before:,.0f}, theirs {theirs:,.0f}, pydantic alone {alone:,.0f}"
        )
    samples.ratio(f"{label}: ours / theirs", f"{label}: {OURS}", f"{label}: {THEIRS}")
    samples.ratio(
        f"{label}: read_all one call a page / theirs", f"{label}: {one_call}", f"{label}: {THEIRS}"
    )
    samples.ratio(f"{label}: ours / floor", f"{label}: {OURS}", f"{label}: {validating}")
    # The best ratio any pydantic reader could reach: fetching for free, building the models.
    samples.ratio(f"{label}: pydantic alone / theirs", f"{label}: {pydantic}", f"{label}: {THEIRS}")

    figures = []
    for name in samples.values:
        if name.endswith("ours / theirs") and name.startswith("read all"):
            figures.append(samples.figure(name, "ratio", target=READ_TARGET_RATIO))
        elif name.endswith(("/ theirs", "ours / floor")):
            at_target = name.startswith(f"append 1 event/tx, {TARGET_AT} writers")
            figures.append(
                samples.figure(name, "ratio", target=TARGET_RATIO if at_target else None)
            )
        elif name == f"{label}: {OURS}":
            figures.append(samples.figure(name, "events/s", target=READ_TARGET))
        else:
            figures.append(samples.figure(name, "events/s"))
    return figures
