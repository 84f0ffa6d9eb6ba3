"""The projector runner against a real PostgreSQL: checkpoints, live tail, locks, failures."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from events.database import init_connection
from events.models import Event, NewEvent, RecordedEvent, register
from events.store import START, Connection, Cursor, EventStore, ExpectedVersion
from projections import checkpoints
from projections.projection import Projection
from projections.projectors import oldest_transaction_seconds, run_projectors
from projections.runner import ProjectionFailed, ProjectionRunner
from tests.conftest import wait_until

_CREATE = """
CREATE TABLE IF NOT EXISTS test_projected (
    position  bigint PRIMARY KEY,
    applied   bigserial,
    stream_id text NOT NULL,
    note      text NOT NULL
)
"""


@register
class NoteTaken(Event):
    type_name = "TestNoteTaken"

    note: str


@register
class OtherNote(Event):
    """An event no test projection handles (as a confirmation is to the rejections)."""

    type_name = "TestOtherNote"

    note: str


class Handler:
    """Writes one row per event; raises on the note "boom" while `broken` is set."""

    def __init__(self) -> None:
        self.broken = True

    async def __call__(
        self, connection: Connection, events: Sequence[RecordedEvent], table: str
    ) -> None:
        for recorded in events:
            assert isinstance(recorded.event, NoteTaken)
            if recorded.event.note == "boom" and self.broken:
                raise RuntimeError("cannot take this note")
            await connection.execute(
                "INSERT INTO test_projected (position, stream_id, note) VALUES ($1, $2, $3)",
                recorded.position,
                recorded.stream_id,
                recorded.event.note,
            )


@pytest.fixture
async def store(db: asyncpg.Pool) -> EventStore:
    await db.execute(_CREATE)
    return EventStore(db)


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def projection(handler: Handler) -> Projection:
    return Projection(
        name="test_notes", types=("TestNoteTaken",), table="test_projected", apply_batch=handler
    )


@contextlib.asynccontextmanager
async def running(
    db: asyncpg.Pool, store: EventStore, projection: Projection, **options: object
) -> AsyncIterator[ProjectionRunner]:
    runner = ProjectionRunner(db, store, projection, **options)  # type: ignore[arg-type]
    runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


async def last_appended(db: asyncpg.Pool) -> Cursor:
    """The cursor of the newest event, horizon or not."""
    row = await db.fetchrow("SELECT transaction_id, position FROM events ORDER BY position DESC")
    return START if row is None else Cursor(row["transaction_id"], row["position"])


async def horizon_passed(db: asyncpg.Pool) -> Cursor:
    """Wait until every event appended so far is readable behind the transaction horizon.

    The horizon is the whole server's: a transaction open in another database (another test
    run sharing the server, an autovacuum ANALYZE) holds it back for a moment.
    """
    store, last = EventStore(db), await last_appended(db)

    async def passed() -> bool:
        return await store.head() >= last

    await wait_until(passed)
    return last


async def take(db: asyncpg.Pool, *notes: str, stream: str = "notes") -> Cursor:
    await EventStore(db).append(
        stream, [NewEvent(NoteTaken(note=n)) for n in notes], expected_version=ExpectedVersion.ANY
    )
    return await last_appended(db)


async def applied(db: asyncpg.Pool) -> list[str]:
    rows = await db.fetch("SELECT note FROM test_projected ORDER BY applied")
    return [row["note"] for row in rows]


async def test_catches_up_in_batches_then_wakes_on_notify(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    notes = [f"n{i}" for i in range(25)]
    head = await take(db, *notes)
    await horizon_passed(db)  # the first catch-up has no notification to wake it again
    # A poll interval of a minute: only the notification can wake the runner in time.
    async with running(db, store, projection, batch_size=10, poll_interval=60) as runner:
        await runner.wait_for(head)
        assert await applied(db) == notes
        live = await take(db, "live")
        await runner.wait_for(live)
        assert await applied(db) == [*notes, "live"]
        stored = await checkpoints.read(db, "test_notes")
        assert stored.cursor == live
        assert stored.state == "running"


async def statement_logging_pool(
    database_url: str, statements: list[str], *, size: int
) -> asyncpg.Pool:
    """A pool of up to `size` connections that appends every statement it sends to `statements`."""

    async def logged(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        conn.add_query_logger(lambda record: statements.append(record.query))

    pool: asyncpg.Pool = await asyncpg.create_pool(
        database_url, min_size=2, max_size=size, init=logged
    )
    return pool


async def test_wakes_with_nothing_of_its_types_open_no_batch(
    db: asyncpg.Pool, store: EventStore, projection: Projection, database_url: str
) -> None:
    # Most wakes bring only other types (a confirmation's NOTIFY, the rechecks after it): the
    # runner sees there is nothing to apply without a batch's transaction and row lock.
    statements: list[str] = []
    own = await statement_logging_pool(database_url, statements, size=2)
    runner = ProjectionRunner(own, store, projection, poll_interval=0.02)
    runner.start()
    try:
        for n in range(3):
            await store.append(
                "others", [NewEvent(OtherNote(note=f"o{n}"))], expected_version=ExpectedVersion.ANY
            )
            store.wake_subscribers()
        await runner.wait_for(await horizon_passed(db))
        assert not [s for s in statements if "FOR UPDATE" in s]
        assert await applied(db) == []

        note = await take(db, "mine")
        await runner.wait_for(note)
        assert await applied(db) == ["mine"]
        assert [s for s in statements if "FOR UPDATE" in s]  # its batch claimed the checkpoint
    finally:
        await runner.stop()
        await own.close()


async def test_the_head_is_read_only_while_someone_waits(
    db: asyncpg.Pool, projection: Projection, database_url: str
) -> None:
    # How far the runner has seen events of other types matters to wait_for alone.
    statements: list[str] = []
    own = await statement_logging_pool(database_url, statements, size=3)

    def sent(fragment: str) -> int:
        return sum(fragment in s for s in statements)

    runner = ProjectionRunner(own, EventStore(own), projection, poll_interval=0.02)
    runner.start()
    try:

        async def stepped_thrice() -> bool:
            return sent("type = ANY") >= 3

        await wait_until(stepped_thrice)
        assert sent("ORDER BY transaction_id DESC") == 0

        await EventStore(db).append(
            "others", [NewEvent(OtherNote(note="o"))], expected_version=ExpectedVersion.ANY
        )
        await runner.wait_for(await horizon_passed(db))
        assert sent("ORDER BY transaction_id DESC") > 0
    finally:
        await runner.stop()
        await own.close()


async def test_an_event_that_does_not_fit_fails_the_projection_after_a_quiet_wake(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    # The check before a batch must not decode: an undecodable event there killed the runner
    # (its task died, the state stayed "running", waiters hung) instead of failing the
    # projection where an operator sees it.
    async with running(db, store, projection, poll_interval=0.02) as runner:
        await runner.wait_for(await take(db, "a"))
        async with db.acquire() as conn, conn.transaction():
            await store.append(
                "notes",
                [NewEvent(NoteTaken(note="b"))],
                expected_version=ExpectedVersion.ANY,
                connection=conn,
            )
            await conn.execute("UPDATE events SET schema_version = 99 WHERE data->>'note' = 'b'")
        with pytest.raises(ProjectionFailed, match="v99"):
            await runner.wait_for(await horizon_passed(db))
        stored = await checkpoints.read(db, "test_notes")
        assert stored.state == "failed"


async def test_a_rewound_checkpoint_is_applied_again(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    # checkpoints.reset takes any cursor: a checkpoint moved back while the runner leads is
    # applied again on its next wake, though no new event of its types arrives.
    async with running(db, store, projection, poll_interval=0.02) as runner:
        await runner.wait_for(await take(db, "a", "b"))
        async with db.acquire() as conn, conn.transaction():
            await conn.execute("TRUNCATE test_projected")
            await checkpoints.reset(conn, "test_notes", START)
        await store.append(
            "others", [NewEvent(OtherNote(note="o"))], expected_version=ExpectedVersion.ANY
        )
        store.wake_subscribers()

        async def applied_again() -> bool:
            return await applied(db) == ["a", "b"]

        await wait_until(applied_again)


async def test_a_failure_stored_by_another_process_reaches_a_waiter(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    async with running(db, store, projection, poll_interval=0.02) as runner:
        await runner.wait_for(await take(db, "a"))
        await checkpoints.mark_failed(db, "test_notes", "failed elsewhere")
        await store.append(
            "others", [NewEvent(OtherNote(note="o"))], expected_version=ExpectedVersion.ANY
        )
        with pytest.raises(ProjectionFailed, match="failed elsewhere"):
            await runner.wait_for(await horizon_passed(db))


async def test_a_waiter_is_answered_before_the_next_poll(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    # No notifications and a poll a minute away: only the waiter's own wake-up can answer it.
    async with running(db, store, projection, listen=False, poll_interval=60) as runner:
        for note in ("o1", "o2"):
            await store.append(
                "others", [NewEvent(OtherNote(note=note))], expected_version=ExpectedVersion.ANY
            )
            await runner.wait_for(await horizon_passed(db))


async def test_polling_alone_finds_new_events(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    async with running(db, store, projection, listen=False, poll_interval=0.02) as runner:
        head = await take(db, "a", "b")
        await runner.wait_for(head)
        position = (await last_appended(db)).position
        await runner.wait_for(position)
        assert await applied(db) == ["a", "b"]


async def test_failing_handler_rolls_back_its_batch_and_stops_the_projection(
    db: asyncpg.Pool, store: EventStore, projection: Projection, handler: Handler
) -> None:
    head = await take(db, "a", "b", "boom", "c")
    async with running(db, store, projection, batch_size=10, poll_interval=0.02) as runner:
        with pytest.raises(ProjectionFailed, match="cannot take this note"):
            await runner.wait_for(head)
        # Nothing of the batch is applied and the checkpoint has not moved.
        assert await applied(db) == []
        stored = await checkpoints.read(db, "test_notes")
        assert stored.cursor == START
        assert stored.state == "failed"
        assert stored.error is not None
        await horizon_passed(db)
        boom = (await store.read_all())[2]
        assert f"event {boom.position} (TestNoteTaken in stream notes)" in stored.error
        # It reaches /ready's 503 body: words, no exception class (the log has the traceback).
        assert "the handler failed: cannot take this note" in stored.error
        assert "RuntimeError" not in stored.error
        lag = await runner.lag()
        assert (lag.state, lag.events_behind) == ("failed", 4)

        # Fixed and resumed: it carries on from its checkpoint, skipping nothing.
        handler.broken = False
        assert await checkpoints.resume(db, "test_notes")
        await runner.wait_for(head)
        assert await applied(db) == ["a", "b", "boom", "c"]
        assert (await runner.lag()).events_behind == 0


async def test_one_runner_is_active_and_another_takes_over_when_it_stops(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    options = {"lock_retry": 0.02, "poll_interval": 0.02}
    async with running(db, store, projection, **options) as first:
        await wait_until(lambda: _true(first.active))
        second = ProjectionRunner(db, store, projection, lock_retry=0.02, poll_interval=0.02)
        second.start()
        try:
            await first.wait_for(await take(db, "a"))
            assert not second.active
            await first.stop()
            await wait_until(lambda: _true(second.active))
            await second.wait_for(await take(db, "b"))
            assert await applied(db) == ["a", "b"]
        finally:
            await second.stop()


async def test_another_runner_takes_over_when_the_lock_connection_dies(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    options = {"lock_retry": 0.02, "poll_interval": 0.02}
    async with (
        running(db, store, projection, **options) as first,
        running(db, store, projection, **options) as second,
    ):
        await wait_until(lambda: _true(first.active or second.active))
        holder = await db.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert await db.fetchval("SELECT pg_terminate_backend($1)", holder)
        head = await take(db, "after the crash")

        async def applied_by_someone() -> bool:
            return (await checkpoints.read(db, "test_notes")).cursor >= head

        await wait_until(applied_by_someone)
        assert await applied(db) == ["after the crash"]


async def test_event_committed_out_of_position_order_is_applied_in_order(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    """DESIGN.md §3 invariant 4, through the runner: position 1 commits after position 2."""
    async with running(db, store, projection, poll_interval=0.02) as runner:
        async with db.acquire() as slow, slow.transaction():
            await store.append(
                "slow",
                [NewEvent(NoteTaken(note="slow"))],
                expected_version=ExpectedVersion.ANY,
                connection=slow,
            )
            await store.append(
                "fast", [NewEvent(NoteTaken(note="fast"))], expected_version=ExpectedVersion.ANY
            )
            fast = await db.fetchrow("SELECT transaction_id, position FROM events")
            assert fast is not None
            # While position 1 is uncommitted the runner must not move past it to position 2.
            with pytest.raises(TimeoutError):
                await runner.wait_for(Cursor(fast["transaction_id"], fast["position"]), timeout=0.2)
            assert await applied(db) == []
        await runner.wait_for(await last_appended(db))
        rows = await db.fetch("SELECT position, note FROM test_projected ORDER BY applied")
        assert [(r["position"], r["note"]) for r in rows] == [(1, "slow"), (2, "fast")]


async def test_lag_counts_unapplied_events_and_the_age_of_the_oldest(
    db: asyncpg.Pool, store: EventStore, projection: Projection
) -> None:
    await take(db, "a", "b", "c")
    head = await take(db, "other", stream="elsewhere")
    idle = ProjectionRunner(db, store, projection)
    lag = await idle.lag()
    assert (lag.events_behind, lag.checkpoint, lag.active) == (4, START, False)
    assert lag.seconds_behind > 0
    async with run_projectors(db, store, [projection], poll_interval=0.02) as projectors:
        await projectors["test_notes"].wait_for(head)
        [lag] = await projectors.lag()
        assert (lag.name, lag.events_behind, lag.seconds_behind) == ("test_notes", 0, 0.0)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_current_xact_id()")  # an id: it holds the horizon
        assert await oldest_transaction_seconds(db) > 0


async def _true(value: bool) -> bool:
    return value
