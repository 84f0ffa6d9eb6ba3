"""Replay: rebuild a projection from the start of the log into a twin table, then swap it in.

Reads keep being answered from the live table while the twin (projections/twin.py) fills. The
swap is one short transaction: lock the live table (and, for a runner-kept projection, its
checkpoint row, which holds its runner back), apply what was appended since the fill's cursor,
drop the live table and give the twin its names, and for a runner-kept projection move the
checkpoint to the replay's cursor. A reader blocked on the lock resolves the name again when it
gets it, so it reads the new table: nobody ever sees a missing or half-built one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import asyncpg

from events import replay_reads
from events.errors import DATABASE_ERRORS
from events.models import RecordedEvent
from events.replay_reads import LoggedData
from events.store import START, Connection, Cursor
from projections import checkpoints
from projections.projection import Projection
from projections.twin import Twin

_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('bg-rebuild:' || $1, 0))"
# COPY's text values are read in the session time zone; stored times always carry an offset,
# but a naive one must mean UTC, as it does to asyncpg.
_UTC = "SET LOCAL TimeZone = 'UTC'"
SWAP_ATTEMPTS = 3

Batch = Sequence[LoggedData] | Sequence[RecordedEvent]


class RebuildError(Exception):
    """The rebuild could not run or could not be swapped in; the live table is untouched."""


class Phase(StrEnum):
    """The steps of a rebuild, in order. Only the fill reports `Progress`; on a large log the
    others take seconds too (the count, the twin's indexes, the swap's catch-up), so a caller
    is told when each begins and need not look stuck."""

    COUNTING = "counting events"
    FILLING = "rebuilding"
    INDEXING = "building indexes"
    SWAPPING = "swapping in"


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a rebuild has got; `total` is the log's count at the start, an estimate."""

    projection: str
    done: int
    total: int
    elapsed: float


@dataclass(frozen=True, slots=True)
class RebuildResult:
    """A finished rebuild: events applied, time taken and the cursor it was swapped in at."""

    projection: str
    events: int
    seconds: float
    cursor: Cursor

    @property
    def rate(self) -> float:
        """Events applied per second."""
        return self.events / self.seconds if self.seconds > 0 else float(self.events)


async def rebuild(
    pool: asyncpg.Pool,
    projection: Projection,
    *,
    batch_size: int = 10_000,
    on_progress: Callable[[Progress], None] | None = None,
    on_phase: Callable[[Phase], None] | None = None,
    lock_timeout: float = 5.0,
) -> RebuildResult:
    """Rebuild `projection` from position zero and swap it in atomically (needs 3 connections);
    `on_phase` hears each `Phase` as it begins, `on_progress` the fill's progress."""
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        if on_progress is not None:
            elapsed = time.monotonic() - started
            on_progress(Progress(projection.name, done, max(total, done), elapsed))

    def begin(phase: Phase) -> None:
        if on_phase is not None:
            on_phase(phase)

    async with pool.acquire() as conn:
        if not await conn.fetchval(_TRY_LOCK, projection.name):
            raise RebuildError(f"a rebuild of {projection.name} is already running")
        twins = [
            await Twin.create(
                conn,
                projection.table,
                projection.rebuild_table,
                fill_indexes=projection.fill_indexes,
            )
        ]
        # A replayer writes its twins once, at the end: their indexes are built after that.
        side_indexes = () if projection.replayer is not None else None
        for side in projection.side_tables:
            twins.append(
                await Twin.create(conn, side, f"{side}_rebuild", fill_indexes=side_indexes)
            )
        try:
            begin(Phase.COUNTING)
            total = await replay_reads.count(conn, projection.types)
            begin(Phase.FILLING)
            if projection.replay_insert is not None:
                # PostgreSQL fills the twin itself, on this connection: no reader, no writer.
                done, cursor = await _fill_in_server(
                    conn, projection, batch_size, lambda n: report(n, total)
                )
            else:
                done, cursor = await _fill(pool, projection, batch_size, lambda n: report(n, total))
            begin(Phase.INDEXING)
            for twin in twins:
                await twin.build_indexes(conn)
            # A fill may stop at a bound taken when it began (the appointments split): what was
            # appended since is applied here, behind the horizon and without the lock, so that
            # the swap's locked catch-up, which live bookings wait for, has only the last
            # moments left to apply.
            ahead, cursor = await _catch_up(conn, projection, cursor, batch_size, horizon=True)
            done += ahead
            begin(Phase.SWAPPING)
            caught_up, cursor = await _swap(
                conn, projection, twins, cursor, batch_size, lock_timeout
            )
        finally:
            with contextlib.suppress(*DATABASE_ERRORS):
                for twin in twins:
                    await twin.drop(conn)
                await conn.execute("SELECT pg_advisory_unlock_all()")
    report(done + caught_up, done + caught_up)  # finished: the count is now exact
    return RebuildResult(projection.name, done + caught_up, time.monotonic() - started, cursor)


def connections_needed(projection: Projection) -> int:
    """The connections `rebuild` holds at once: its own, and a reader and a writer unless
    PostgreSQL fills the twin itself."""
    return 1 if projection.replay_insert is not None else 3


async def rebuild_all(
    pool: asyncpg.Pool,
    projections: Sequence[Projection],
    *,
    batch_size: int = 10_000,
    on_progress: Callable[[Progress], None] | None = None,
    on_phase: Callable[[str, Phase], None] | None = None,
    on_result: Callable[[RebuildResult], None] | None = None,
) -> list[RebuildResult]:
    """Rebuild `projections`, all at once when the pool has the connections for it.

    They are independent (each its own twins, lock and cursor), and they load different parts
    of the machine: PostgreSQL fills the rejections while this process folds the appointments.
    One after the other when the pool is too small (each rebuild waits for its connections
    while holding some: sharing too few would deadlock). `on_phase` hears the projection's name.
    """

    async def one(projection: Projection) -> RebuildResult:
        result = await rebuild(
            pool,
            projection,
            batch_size=batch_size,
            on_progress=on_progress,
            on_phase=None if on_phase is None else functools.partial(on_phase, projection.name),
        )
        if on_result is not None:
            on_result(result)
        return result

    if sum(connections_needed(p) for p in projections) > pool.get_max_size():
        return [await one(projection) for projection in projections]
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(projection)) for projection in projections]
    except BaseExceptionGroup as group_error:
        # Callers handle a rebuild's own errors (RebuildError, DatabaseUnavailable, …) as one
        # rebuild run alone would raise them; the group is the TaskGroup's wrapping, not news.
        # The first failure is the cause; the others were cancelled by it or share it.
        raise group_error.exceptions[0] from None
    return [task.result() for task in tasks]


async def _read(
    conn: Connection, projection: Projection, after: Cursor, limit: int, *, horizon: bool = True
) -> Batch:
    reader = replay_reads.read_data_batch if projection.replay_batch else replay_reads.read_batch
    return await reader(
        conn, after=after, types=projection.types, limit=limit, behind_horizon=horizon
    )


async def _read_upto(
    conn: Connection,
    types: Sequence[str],
    after: Cursor,
    limit: int,
    upto: Cursor,
    keep: str,
) -> Batch:
    # A replayer's fill: up to the bound both its passes share, what its server pass left.
    if not types:
        return []
    return await replay_reads.read_data_batch(
        conn, after=after, types=types, limit=limit, upto=upto, where=keep
    )


async def _write(
    conn: Connection, projection: Projection, batch: Batch, *, durable: bool = True
) -> None:
    async with conn.transaction():
        await conn.execute(_UTC)
        if not durable:
            # Losing the twin in a crash costs a rerun, nothing else: skip the wait for flush.
            await conn.execute("SET LOCAL synchronous_commit = off")
        if projection.replay_batch is not None:
            data = cast(Sequence[LoggedData], batch)
            await projection.replay_batch(conn, data, projection.rebuild_table)
        else:
            events = cast(Sequence[RecordedEvent], batch)
            await projection.apply_batch(conn, events, projection.rebuild_table)


async def _fill(
    pool: asyncpg.Pool, projection: Projection, batch_size: int, report: Callable[[int], None]
) -> tuple[int, Cursor]:
    """Apply the log to the twin; reading the next batch overlaps writing this one.

    A replayer's fill stops at one bound, taken first behind the horizon: its server pass
    (`Replayer.start`) and the batches it folds read the same events, and the swap's catch-up
    goes on from the bound."""
    done, cursor = 0, START
    replayer = projection.replayer() if projection.replayer is not None else None
    async with pool.acquire() as reader, pool.acquire() as writer:
        upto: Cursor | None = None
        keep, types = "", projection.types
        if replayer is not None:
            upto = await replay_reads.bound(reader, projection.types)
            if upto is not None:
                done, keep, types = await replayer.start(
                    reader, projection.types, projection.rebuild_table, upto
                )
                report(done)

        def read_after(after: Cursor) -> asyncio.Task[Batch]:
            if upto is not None:
                return asyncio.create_task(_read_upto(reader, types, after, batch_size, upto, keep))
            return asyncio.create_task(_read(reader, projection, after, batch_size))

        next_batch: asyncio.Task[Batch] | None = (
            None if replayer is not None and upto is None else read_after(START)
        )
        try:
            while next_batch is not None:
                batch = await next_batch
                next_batch = None
                if not batch:
                    break
                cursor = Cursor(batch[-1].transaction_id, batch[-1].position)
                if len(batch) == batch_size:
                    next_batch = read_after(cursor)
                if replayer is not None:
                    # Folded in memory while the next batch is read; written once at the end.
                    await replayer.batch(
                        writer, cast(Sequence[LoggedData], batch), projection.rebuild_table
                    )
                else:
                    await _write(writer, projection, batch, durable=False)
                done += len(batch)
                report(done)
        finally:
            if next_batch is not None:
                next_batch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await next_batch
            if replayer is not None:
                with contextlib.suppress(*DATABASE_ERRORS):
                    await replayer.close(reader)
        if upto is not None:
            cursor = upto
        if replayer is not None:
            async with writer.transaction():
                await writer.execute(_UTC)
                await writer.execute("SET LOCAL synchronous_commit = off")
                await replayer.finish(writer, projection.rebuild_table)
    return done, cursor


async def _fill_in_server(
    conn: Connection, projection: Projection, batch_size: int, report: Callable[[int], None]
) -> tuple[int, Cursor]:
    """Fill the twin with `projection.replay_insert`, a batch per statement; events at an older
    schema version are upcast here and applied with `replay_batch` after their batch."""
    assert projection.replay_insert is not None and projection.replay_batch is not None
    insert = projection.replay_insert(projection.rebuild_table)
    done, cursor = 0, START
    while True:
        async with conn.transaction():
            await conn.execute(_UTC)
            await conn.execute("SET LOCAL synchronous_commit = off")
            filled = await replay_reads.insert_data_batch(
                conn, after=cursor, types=projection.types, limit=batch_size, insert=insert
            )
            if filled.older:
                older = await replay_reads.read_data_at(conn, filled.older, projection.types)
                await projection.replay_batch(conn, older, projection.rebuild_table)
        if filled.last is None:
            return done, cursor
        cursor = filled.last
        done += filled.events
        report(done)
        if filled.events < batch_size:
            return done, cursor


async def _swap(
    conn: Connection,
    projection: Projection,
    twins: Sequence[Twin],
    cursor: Cursor,
    batch_size: int,
    lock_timeout: float,
) -> tuple[int, Cursor]:
    """Catch the twin up and put it in the live table's place, in one transaction."""
    for attempt in range(1, SWAP_ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {int(lock_timeout * 1000)}")
                if not projection.inline:
                    await checkpoints.ensure(conn, projection.name)
                    await checkpoints.claim(conn, projection.name)
                for table in (projection.table, *projection.side_tables):
                    await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                caught_up, cursor = await _catch_up(conn, projection, cursor, batch_size)
                for twin in twins:
                    await twin.swap_in(conn)
                if not projection.inline:
                    await checkpoints.reset(conn, projection.name, cursor)
                return caught_up, cursor
        except asyncpg.LockNotAvailableError as e:
            if attempt == SWAP_ATTEMPTS:
                raise RebuildError(
                    f"could not lock {projection.table} within {lock_timeout}s,"
                    f" {SWAP_ATTEMPTS} times: a long transaction holds it"
                ) from e
    raise AssertionError("unreachable")


async def _catch_up(
    conn: Connection,
    projection: Projection,
    cursor: Cursor,
    batch_size: int,
    *,
    horizon: bool | None = None,
) -> tuple[int, Cursor]:
    # An inline projection's writers write its table in the transaction that appends the event,
    # so under the table lock every such event is committed or its writer waits (and will write
    # to the new table): all that is committed may be read, horizon or not. A runner-kept
    # projection reads behind the horizon as its runner would, and leaves the rest to it.
    # `horizon=True` reads behind the horizon whatever the projection: before the lock.
    behind = not projection.inline if horizon is None else horizon
    caught_up = 0
    while True:
        batch = await _read(conn, projection, cursor, batch_size, horizon=behind)
        if batch:
            await _write(conn, projection, batch)
            caught_up += len(batch)
            cursor = Cursor(batch[-1].transaction_id, batch[-1].position)
        if len(batch) < batch_size:
            return caught_up, cursor
