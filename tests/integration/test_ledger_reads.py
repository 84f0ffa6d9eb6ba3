"""The ledger's named reads (events/reads.py, replay_reads.py, counts.py) against PostgreSQL.

Each reader of the global order is checked against the trap of DESIGN.md §8: an event whose
transaction took a lower position but committed later is never skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from events import reads, replay_reads
from events.counts import count_by_type
from events.errors import EventIdConflict, WrongExpectedVersion
from events.models import Event, NewEvent, register
from events.store import (
    START,
    Cursor,
    EventStore,
    ExpectedVersion,
    append_arguments,
    append_error,
    append_statement,
    start_stream_arguments,
    start_stream_statement,
)
from tests.conftest import wait_until
from tests.integration.test_projector import horizon_passed, last_appended


@register
class Noted(Event):
    """Names a call and a booking in its data, as the booking events do."""

    type_name = "TestNoted"

    call_id: str
    booking_uid: str
    new_booking_uid: str | None = None


@register
class Aside(Event):
    type_name = "TestAside"


def noted(call_id: str = "call-1", booking_uid: str = "uid-1", **more: str) -> NewEvent:
    return NewEvent(Noted(call_id=call_id, booking_uid=booking_uid, **more))


@pytest.fixture
async def store(db: asyncpg.Pool) -> AsyncIterator[EventStore]:
    store = EventStore(db)
    yield store
    await store.close()


# A reader of the global order: the (transaction id, position) of each event it returns after
# a cursor, in the order returned.
Reader = Callable[[asyncpg.Pool, Cursor], Awaitable[list[Cursor]]]


async def by_read_all(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    return [Cursor(e.transaction_id, e.position) for e in await reads.read_all(db, after=after)]


async def by_read_all_pages(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    # One event a page: every page but the last is full, so each is read ahead of its decoding.
    async with EventStore(db).read_all_pages(after=after, limit=1, types=["TestNoted"]) as pages:
        return [Cursor(e.transaction_id, e.position) async for page in pages for e in page]


async def by_read_all_of_types(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    events = await reads.read_all(db, after=after, types=["TestNoted"])
    return [Cursor(e.transaction_id, e.position) for e in events]


async def by_projector(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    # As projections/runner.py reads: in the transaction that applies the batch.
    async with db.acquire() as conn, conn.transaction():
        events = await EventStore(db).read_all(
            after=after, limit=500, types=["TestNoted"], connection=conn
        )
    return [Cursor(e.transaction_id, e.position) for e in events]


async def by_replay_batch(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    async with db.acquire() as conn:
        events = await replay_reads.read_batch(conn, after=after, types=["TestNoted"], limit=100)
    return [Cursor(e.transaction_id, e.position) for e in events]


async def by_replay_data_batch(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    async with db.acquire() as conn:
        logged = await replay_reads.read_data_batch(
            conn, after=after, types=["TestNoted"], limit=100
        )
    return [Cursor(e.transaction_id, e.position) for e in logged]


async def by_replay_insert(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    # Replay's fill inside PostgreSQL: what the INSERT saw, and the cursor it reported.
    async with db.acquire() as conn:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS seen (transaction_id xid8, position bigint)"
        )
        await conn.execute("TRUNCATE seen")
        filled = await replay_reads.insert_data_batch(
            conn,
            after=after,
            types=["TestNoted"],
            limit=100,
            insert="INSERT INTO seen SELECT transaction_id, position FROM logged",
        )
        rows = await conn.fetch("SELECT * FROM seen ORDER BY transaction_id, position")
    seen = [Cursor(row["transaction_id"], row["position"]) for row in rows]
    assert filled.events == len(seen)
    assert filled.last == (seen[-1] if seen else None)
    assert filled.older == []
    return seen


async def by_call(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    events = await reads.read_call(db, "call-1", after=after)
    return [Cursor(e.transaction_id, e.position) for e in events]


async def by_booking(db: asyncpg.Pool, after: Cursor) -> list[Cursor]:
    events = await reads.read_booking(db, "uid-1", after=after)
    return [Cursor(e.transaction_id, e.position) for e in events]


READERS: dict[str, Reader] = {
    "read_all": by_read_all,
    "read_all of types": by_read_all_of_types,
    "read_all_pages": by_read_all_pages,
    "the projector's read": by_projector,
    "replay's read_batch": by_replay_batch,
    "replay's read_data_batch": by_replay_data_batch,
    "replay's insert_data_batch": by_replay_insert,
    "read_call": by_call,
    "read_booking": by_booking,
}


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
async def test_no_reader_skips_an_event_committed_out_of_position_order(
    store: EventStore, db: asyncpg.Pool, reader: Reader
) -> None:
    seen: list[Cursor] = []
    cursor = START

    async def poll() -> None:
        nonlocal cursor
        for read in await reader(db, cursor):
            seen.append(read)
            cursor = read

    async with db.acquire() as slow, slow.transaction():
        await store.append("slow", [noted()], expected_version=ExpectedVersion.ANY, connection=slow)
        await store.append("fast", [noted()], expected_version=ExpectedVersion.ANY)
        fast = await last_appended(db)
        assert fast.position == 2  # committed, while position 1 is not
        await poll()
        # A reader by position alone would have seen 2 and moved past 1 for ever.
        assert seen == []

    async def both_seen() -> bool:
        await poll()  # another transaction anywhere may hold the horizon back for a moment
        return len(seen) >= 2

    await wait_until(both_seen)
    assert [c.position for c in seen] == [1, 2]
    assert seen == sorted(seen)


@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
async def test_every_reader_reads_in_transaction_order_not_position_order(
    store: EventStore, db: asyncpg.Pool, reader: Reader
) -> None:
    async with db.acquire() as slow, slow.transaction():
        await slow.execute("SELECT pg_current_xact_id()")  # its id now, older than the fast one's
        await store.append("fast", [noted()], expected_version=ExpectedVersion.ANY)
        await store.append("slow", [noted()], expected_version=ExpectedVersion.ANY, connection=slow)
    await horizon_passed(db)
    seen = await reader(db, START)
    # The older transaction's event first, though its position is higher: a cursor after the
    # newer one must not pass it by.
    assert [c.position for c in seen] == [2, 1]
    assert await reader(db, seen[0]) == seen[1:]


async def test_any_after_sees_what_read_all_would_and_no_more(
    store: EventStore, db: asyncpg.Pool
) -> None:
    types = ["TestNoted"]
    assert not await reads.any_after(db, after=START, types=types)
    async with db.acquire() as slow, slow.transaction():
        await store.append("slow", [noted()], expected_version=ExpectedVersion.ANY, connection=slow)
        await store.append("fast", [noted()], expected_version=ExpectedVersion.ANY)
        # Committed, but behind a transaction still open: read_all would not return it yet.
        assert await reads.read_all(db, types=types) == []
        assert not await reads.any_after(db, after=START, types=types)
    last = await horizon_passed(db)
    assert await reads.any_after(db, after=START, types=types)
    assert not await reads.any_after(db, after=START, types=["TestAside"])
    first = (await reads.read_all(db, types=types))[0]
    after_first = Cursor(first.transaction_id, first.position)
    assert await reads.any_after(db, after=after_first, types=types)
    assert not await reads.any_after(db, after=last, types=types)


async def test_replay_under_a_writers_lock_reads_every_committed_event(
    store: EventStore, db: asyncpg.Pool
) -> None:
    async with db.acquire() as slow, slow.transaction():
        await store.append("slow", [noted()], expected_version=ExpectedVersion.ANY, connection=slow)
        await store.append("fast", [noted()], expected_version=ExpectedVersion.ANY)
        async with db.acquire() as conn:
            batch = await replay_reads.read_batch(
                conn, after=START, types=["TestNoted"], limit=10, behind_horizon=False
            )
            data = await replay_reads.read_data_batch(
                conn, after=START, types=["TestNoted"], limit=10, behind_horizon=False
            )
        assert [e.position for e in batch] == [2] == [d.position for d in data]


async def test_replay_batches_hold_what_read_all_holds(store: EventStore, db: asyncpg.Pool) -> None:
    await store.append("s-1", [noted(), NewEvent(Aside()), noted("call-2")], expected_version=0)
    await horizon_passed(db)
    expected = await reads.read_all(db, types=["TestNoted"])
    async with db.acquire() as conn:
        batch = await replay_reads.read_batch(conn, after=START, types=["TestNoted"], limit=10)
        data = await replay_reads.read_data_batch(conn, after=START, types=["TestNoted"], limit=10)
        assert await replay_reads.count(conn, ["TestNoted"]) == 2
        assert await replay_reads.count(conn, ["TestNoted", "TestAside"]) == 3
        # Pages: after the first event, at most one.
        first = Cursor(expected[0].transaction_id, expected[0].position)
        [second] = await replay_reads.read_batch(conn, after=first, types=["TestNoted"], limit=1)
    assert batch == expected
    assert second == expected[1]
    assert [(d.position, d.event_id, d.type) for d in data] == [
        (e.position, e.event_id, e.type) for e in expected
    ]
    assert [d.data for d in data] == [e.event.model_dump(mode="json") for e in expected]


async def test_head_is_the_last_event_behind_the_horizon(
    store: EventStore, db: asyncpg.Pool
) -> None:
    assert await reads.head(db) == START
    await store.append("s-1", [noted(), noted()], expected_version=0)
    last = await horizon_passed(db)
    assert await reads.head(db) == last == await store.head()
    async with db.acquire() as slow, slow.transaction():
        await store.append("slow", [noted()], expected_version=0, connection=slow)
        await store.append("fast", [noted()], expected_version=0)
        assert await reads.head(db) == last  # the fast one waits behind the slow one


async def test_cursor_at_a_position(store: EventStore, db: asyncpg.Pool) -> None:
    await store.append("s-1", [noted(), noted()], expected_version=0)
    last = await last_appended(db)
    assert await reads.cursor_at(db, last.position) == last
    assert await reads.cursor_at(db, last.position + 1) is None


async def test_backlog_counts_every_committed_event_after_the_cursor(
    store: EventStore, db: asyncpg.Pool
) -> None:
    assert await reads.backlog(db, after=START, types=["TestNoted"]) == (0, 0.0)
    await store.append("s-1", [noted(), NewEvent(Aside()), noted()], expected_version=0)
    first = await reads.cursor_at(db, 1)
    assert first is not None
    behind = await reads.backlog(db, after=START, types=["TestNoted"])
    assert behind.events == 2
    assert behind.seconds > 0
    assert (await reads.backlog(db, after=first, types=["TestNoted"])).events == 1
    assert (await reads.backlog(db, after=first, types=["TestNoted", "TestAside"])).events == 2
    last = await last_appended(db)
    assert await reads.backlog(db, after=last, types=["TestNoted"]) == (0, 0.0)


async def test_read_call_finds_the_calls_events_in_order_and_pages(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await store.append("s-1", [noted("call-1"), noted("call-2")], expected_version=0)
    await store.append("s-2", [NewEvent(Aside()), noted("call-1")], expected_version=0)
    await horizon_passed(db)
    events = await reads.read_call(db, "call-1")
    assert [(e.stream_id, e.version) for e in events] == [("s-1", 1), ("s-2", 2)]
    [first] = await reads.read_call(db, "call-1", limit=1)
    after = Cursor(first.transaction_id, first.position)
    assert await reads.read_call(db, "call-1", after=after) == events[1:]
    assert await reads.read_call(db, "call-9") == []
    with pytest.raises(ValueError, match="limit"):
        await reads.read_call(db, "call-1", limit=0)


async def test_read_booking_finds_it_by_uid_or_as_a_reschedules_new_uid_once(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await store.append(
        "s-1",
        [
            noted(booking_uid="uid-1"),
            noted(booking_uid="uid-0", new_booking_uid="uid-1"),  # moved there
            noted(booking_uid="uid-1", new_booking_uid="uid-1"),  # named twice, read once
            noted(booking_uid="uid-2"),
        ],
        expected_version=0,
    )
    await horizon_passed(db)
    events = await reads.read_booking(db, "uid-1")
    assert [e.version for e in events] == [1, 2, 3]
    [first] = await reads.read_booking(db, "uid-1", limit=1)
    after = Cursor(first.transaction_id, first.position)
    assert await reads.read_booking(db, "uid-1", after=after) == events[1:]


async def noted_counts(since: int, db: asyncpg.Pool) -> tuple[int, int, int]:
    """The horizon, and how many TestNoted events are settled since `since` and recent."""
    counts = await count_by_type(db, since=since)
    settled = sum(c.n for c in counts.settled if c.type == "TestNoted")
    recent = sum(c.n for c in counts.recent if c.type == "TestNoted")
    return counts.horizon, settled, recent


async def test_counts_split_at_the_horizon_never_miss_a_late_commit(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await store.append("s-1", [noted(), noted()], expected_version=0)
    await horizon_passed(db)
    horizon, settled, recent = await noted_counts(0, db)
    assert (settled, recent) == (2, 0)
    # Counted from the last horizon on, the settled ones are not counted again.
    assert (await noted_counts(horizon, db))[1] == 0
    async with db.acquire() as slow, slow.transaction():
        await store.append("slow", [noted()], expected_version=0, connection=slow)
        await store.append("fast", [noted()], expected_version=0)
        _, settled, recent = await noted_counts(horizon, db)
        assert (settled, recent) == (0, 1)  # the fast one, above the slow one's horizon
    await horizon_passed(db)
    later, settled, recent = await noted_counts(horizon, db)
    assert (settled, recent) == (2, 0)  # both, the late commit too, exactly once
    assert later > horizon


async def test_counts_group_rejections_by_guard_and_reason(db: asyncpg.Pool) -> None:
    for guard, reason in [("freshness", "stale_booking"), ("freshness", "stale_booking")]:
        await db.execute(
            "INSERT INTO events (stream_id, version, event_id, type, schema_version, data,"
            " metadata) VALUES (gen_random_uuid()::text, 1, gen_random_uuid(),"
            " 'BookingRejected', 1, $1, '{}')",
            {"guard": guard, "reason": reason},
        )
    await horizon_passed(db)
    counts = await count_by_type(db)
    assert [(c.type, c.guard, c.reason, c.n) for c in counts.settled] == [
        ("BookingRejected", "freshness", "stale_booking", 2)
    ]


_EMBEDDED_APPEND = f"""
WITH appended AS (
    {append_statement(first=1)}
)
SELECT version FROM appended
"""

_EMBEDDED_START = f"""
WITH allowed AS (SELECT 1 WHERE $1::boolean)
{start_stream_statement(first=2, once_per="allowed").strip()}
"""


async def test_an_embedded_append_checks_the_expected_version_as_append_does(
    store: EventStore, db: asyncpg.Pool
) -> None:
    args = append_arguments("s-1", [store.encode(noted())], expected_version=0)
    assert await db.fetchval(_EMBEDDED_APPEND, *args) == 1
    stale = append_arguments("s-1", [store.encode(noted())], expected_version=0)
    with pytest.raises(asyncpg.PostgresError) as refused:
        await db.fetchval(_EMBEDDED_APPEND, *stale)
    translated = append_error(refused.value, "s-1", 0)
    assert isinstance(translated, WrongExpectedVersion)
    assert translated.actual == 1
    reused = store.encode(noted())
    await store.append("s-2", [NewEvent(Aside(), event_id=reused[0])], expected_version=0)
    with pytest.raises(asyncpg.PostgresError) as conflict:
        await db.fetchval(_EMBEDDED_APPEND, *append_arguments("s-3", [reused], expected_version=0))
    assert isinstance(append_error(conflict.value, "s-3", 0), EventIdConflict)
    assert [e.version for e in await store.read_stream("s-1")] == [1]


async def test_an_embedded_stream_start_writes_once_per_row_of_its_cte(
    store: EventStore, db: asyncpg.Pool
) -> None:
    def first_event() -> list[object]:
        return start_stream_arguments("s-1", store.encode(noted()))

    assert await db.execute(_EMBEDDED_START, False, *first_event()) == "INSERT 0 0"
    assert await db.execute(_EMBEDDED_START, True, *first_event()) == "INSERT 0 1"
    with pytest.raises(asyncpg.PostgresError) as exists:
        await db.execute(_EMBEDDED_START, True, *first_event())
    refused = append_error(exists.value, "s-1", ExpectedVersion.NO_STREAM)
    assert isinstance(refused, WrongExpectedVersion)
    assert [e.version for e in await store.read_stream("s-1")] == [1]
    with pytest.raises(ValueError, match="CTE"):
        start_stream_statement(once_per="x; DROP TABLE events")


async def test_replay_reads_of_several_types_merge_them_in_the_horizons_order(
    store: EventStore, db: asyncpg.Pool
) -> None:
    # One ordered scan per type, merged: the same events, in the same order, as read_all's.
    await store.append("s-1", [noted(), NewEvent(Aside()), noted("call-2")], expected_version=0)
    await store.append("s-2", [NewEvent(Aside())], expected_version=0)
    await store.append("s-3", [noted("call-3"), NewEvent(Aside())], expected_version=0)
    await horizon_passed(db)
    types = ["TestNoted", "TestAside"]
    expected = await reads.read_all(db, types=types)
    assert len(expected) == 6
    async with db.acquire() as conn:
        for limit in (1, 2, 4, 100):
            batches: list[Cursor] = []
            after = START
            while batch := await replay_reads.read_data_batch(
                conn, after=after, types=types, limit=limit
            ):
                batches += [Cursor(d.transaction_id, d.position) for d in batch]
                after = batches[-1]
            assert batches == [Cursor(e.transaction_id, e.position) for e in expected]
        events = await replay_reads.read_batch(conn, after=START, types=types, limit=100)
    assert events == expected
