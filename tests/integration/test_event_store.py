"""The event store against a real PostgreSQL: versions, idempotency, order, limits."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import aclosing

import asyncpg
import orjson
import pytest
from pydantic import ValidationError

from events import reads
from events.calls import RetellCallAnalyzed
from events.database import Connection, create_pool
from events.errors import EventIdConflict, InvalidEvent, UnknownEventType, WrongExpectedVersion
from events.models import Event, EventMetadata, NewEvent, RecordedEvent, register
from events.store import START, Cursor, EventStore, ExpectedVersion
from tests.conftest import wait_until


@register
class CounterIncremented(Event):
    type_name = "TestCounterIncremented"

    counter: str
    by: int
    note: str = ""


@register
class Other(Event):
    type_name = "TestOther"


class NotRegistered(Event):
    type_name = "TestNotRegistered"


def bump(by: int = 1, counter: str = "c", note: str = "") -> NewEvent:
    return NewEvent(CounterIncremented(counter=counter, by=by, note=note))


async def count_events(pool: asyncpg.Pool) -> int:
    n: int = await pool.fetchval("SELECT count(*) FROM events")
    return n


@pytest.fixture
async def store(db: asyncpg.Pool) -> AsyncIterator[EventStore]:
    store = EventStore(db, max_event_bytes=4096)
    yield store
    await store.close()


async def test_append_returns_new_version_and_reads_back_in_order(store: EventStore) -> None:
    version = await store.append(
        "s-1", [bump(1), bump(2), bump(3)], expected_version=ExpectedVersion.NO_STREAM
    )
    assert version == 3
    events = await store.read_stream("s-1")
    assert [e.version for e in events] == [1, 2, 3]
    assert [e.event for e in events] == [CounterIncremented(counter="c", by=n) for n in (1, 2, 3)]
    assert [e.version for e in await store.read_stream("s-1", after_version=2)] == [3]


async def test_two_concurrent_appends_with_one_expected_version_one_wins(
    store: EventStore,
) -> None:
    await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)
    results = await asyncio.gather(
        store.append("s-1", [bump(10)], expected_version=1),
        store.append("s-1", [bump(20)], expected_version=1),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, int)]
    losses = [r for r in results if isinstance(r, WrongExpectedVersion)]
    assert wins == [2]
    assert len(losses) == 1
    assert losses[0].actual == 2
    assert losses[0].expected == 1
    assert await store.stream_version("s-1") == 2


async def test_concurrent_appends_with_any_all_land_in_order(store: EventStore) -> None:
    await asyncio.gather(
        *(store.append("s-1", [bump(n)], expected_version=ExpectedVersion.ANY) for n in range(20))
    )
    events = await store.read_stream("s-1")
    assert [e.version for e in events] == list(range(1, 21))
    assert sorted(e.event.by for e in events if isinstance(e.event, CounterIncremented)) == list(
        range(20)
    )


async def waiting_on_a_lock(db: asyncpg.Pool) -> bool:
    waiting: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return waiting > 0


@pytest.mark.parametrize("size", [1, 3], ids=["one event", "a batch"])
async def test_an_append_that_loses_a_race_reports_the_winners_version(
    store: EventStore, db: asyncpg.Pool, size: int
) -> None:
    await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)
    async with db.acquire() as first, first.transaction():
        await store.append("s-1", [bump(), bump()], expected_version=1, connection=first)
        # The second append reads version 1 too, then waits on the first one's versions.
        late = [bump(7) for _ in range(size)]
        loser = asyncio.create_task(store.append("s-1", late, expected_version=1))
        await wait_until(lambda: waiting_on_a_lock(db))
    [lost] = await asyncio.gather(loser, return_exceptions=True)
    assert isinstance(lost, WrongExpectedVersion)
    assert lost.actual == 3  # the winner's, not counting the loser's own rows
    assert [e.version for e in await store.read_stream("s-1")] == [1, 2, 3]


async def test_any_looks_again_when_an_exact_append_took_its_version(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await store.append("s-1", [bump(1)], expected_version=ExpectedVersion.NO_STREAM)
    async with db.acquire() as exact, exact.transaction():
        await store.append("s-1", [bump(2)], expected_version=1, connection=exact)
        anywhere = asyncio.create_task(
            store.append("s-1", [bump(3), bump(4)], expected_version=ExpectedVersion.ANY)
        )
        await wait_until(lambda: waiting_on_a_lock(db))
    assert await anywhere == 4
    events = await store.read_stream("s-1")
    assert [(e.version, e.event.by) for e in events if isinstance(e.event, CounterIncremented)] == [
        (1, 1),
        (2, 2),
        (3, 3),
        (4, 4),
    ]


async def test_an_exact_version_beyond_the_stream_leaves_no_gap(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)
    for events in ([bump()], [bump(), bump()]):
        with pytest.raises(WrongExpectedVersion) as ahead:
            await store.append("s-1", events, expected_version=5)
        assert (ahead.value.expected, ahead.value.actual) == (5, 1)
    assert await count_events(db) == 1


async def test_a_refused_single_append_leaves_the_callers_transaction_usable(
    store: EventStore, db: asyncpg.Pool
) -> None:
    first = bump()
    await store.append("s-1", [first], expected_version=ExpectedVersion.NO_STREAM)
    async with db.acquire() as conn, conn.transaction():
        retry = await store.append(
            "s-1", [first], expected_version=ExpectedVersion.NO_STREAM, connection=conn
        )
        assert retry == -1
        with pytest.raises(WrongExpectedVersion):
            await store.append("s-1", [bump()], expected_version=0, connection=conn)
        assert await store.append("s-1", [bump()], expected_version=1, connection=conn) == 2
    assert await store.stream_version("s-1") == 2


async def test_expectations_no_stream_and_stream_exists(store: EventStore) -> None:
    with pytest.raises(WrongExpectedVersion) as missing:
        await store.append("s-1", [bump()], expected_version=ExpectedVersion.STREAM_EXISTS)
    assert missing.value.actual == 0
    await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)
    with pytest.raises(WrongExpectedVersion) as exists:
        await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)
    assert exists.value.actual == 1
    assert "NO_STREAM" in str(exists.value)
    assert await store.append("s-1", [bump()], expected_version=ExpectedVersion.STREAM_EXISTS) == 2


async def test_replaying_an_append_with_the_same_event_ids_writes_nothing(
    store: EventStore, db: asyncpg.Pool
) -> None:
    batch = [bump(1), bump(2)]
    assert await store.append("s-1", batch, expected_version=ExpectedVersion.NO_STREAM) == 2
    # A producer retry: same ids, same content, even with a now-stale expectation.
    assert await store.append("s-1", batch, expected_version=ExpectedVersion.NO_STREAM) == -1
    assert await count_events(db) == 2


async def test_reusing_an_event_id_for_other_content_is_a_conflict(
    store: EventStore, db: asyncpg.Pool
) -> None:
    first = bump(1)
    await store.append("s-1", [first], expected_version=ExpectedVersion.ANY)
    reused = NewEvent(CounterIncremented(counter="c", by=99), event_id=first.event_id)
    with pytest.raises(EventIdConflict):
        await store.append("s-1", [reused], expected_version=ExpectedVersion.ANY)
    with pytest.raises(EventIdConflict):
        await store.append("s-2", [first], expected_version=ExpectedVersion.ANY)
    assert await count_events(db) == 1


@pytest.mark.parametrize("inside", [False, True], ids=["on the pool", "in a transaction"])
async def test_a_batch_at_an_exact_version_reusing_an_event_id_is_a_conflict(
    store: EventStore, db: asyncpg.Pool, inside: bool
) -> None:
    stored = [bump(1), bump(2)]
    await store.append("s-1", stored, expected_version=ExpectedVersion.NO_STREAM)
    reused = NewEvent(CounterIncremented(counter="c", by=99), event_id=stored[0].event_id)
    twice = bump(5)
    refused = {
        "one id stored with other content": ("s-1", [bump(3), reused], 2),
        "one id twice in the batch": ("s-1", [twice, twice], 2),
        "the batch stored in another stream": ("s-2", stored, 0),
        "part of the batch stored": ("s-1", [*stored, bump(3)], 0),
    }
    for why, (stream, batch, expected) in refused.items():
        async with db.acquire() as conn:
            with pytest.raises(EventIdConflict):
                if inside:
                    async with conn.transaction():
                        await store.append(
                            stream, batch, expected_version=expected, connection=conn
                        )
                else:
                    await store.append(stream, batch, expected_version=expected)
        assert await count_events(db) == 2, why
    assert await store.append("s-1", stored, expected_version=0) == -1  # a retry is no conflict


async def test_unknown_event_type_is_refused_and_nothing_is_written(
    store: EventStore, db: asyncpg.Pool
) -> None:
    with pytest.raises(UnknownEventType, match="TestNotRegistered"):
        await store.append(
            "s-1", [bump(), NewEvent(NotRegistered())], expected_version=ExpectedVersion.ANY
        )
    assert await count_events(db) == 0


async def test_invalid_payload_is_refused_before_the_store(db: asyncpg.Pool) -> None:
    with pytest.raises(ValidationError, match="by"):
        CounterIncremented(counter="c", by="not a number")
    with pytest.raises(ValidationError, match="extra"):
        CounterIncremented(counter="c", by=1, surprise=True)  # type: ignore[call-arg]
    assert await count_events(db) == 0


async def test_oversized_payload_is_refused_and_nothing_of_the_batch_is_written(
    store: EventStore, db: asyncpg.Pool
) -> None:
    with pytest.raises(InvalidEvent, match="limit is 4096"):
        await store.append(
            "s-1", [bump(), bump(note="x" * 5000)], expected_version=ExpectedVersion.ANY
        )
    assert await count_events(db) == 0


async def test_bad_arguments_fail_at_once_with_what_was_expected(store: EventStore) -> None:
    with pytest.raises(InvalidEvent, match="at least one event"):
        await store.append("s-1", [], expected_version=ExpectedVersion.ANY)
    with pytest.raises(InvalidEvent, match="non-empty"):
        await store.append("", [bump()], expected_version=ExpectedVersion.ANY)
    with pytest.raises(InvalidEvent, match="expected_version"):
        await store.append("s-1", [bump()], expected_version=-9)
    with pytest.raises(ValueError, match="cursor"):
        Cursor.parse("12")


async def test_a_stored_row_that_no_longer_fits_its_model_is_reported(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await db.execute(
        "INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)"
        " VALUES ('s-1', 1, $1, 'TestCounterIncremented', 1, $2, '{}')",
        uuid.uuid4(),
        {"counter": "c", "by": "many"},
    )
    with pytest.raises(InvalidEvent, match="does not fit"):
        await store.read_stream("s-1")


async def test_reading_leaves_the_garbage_collector_as_it_found_it(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)
    assert gc.isenabled()
    assert len(await store.read_stream("s-1")) == 1
    assert gc.isenabled()
    gc.disable()  # an application's own choice is kept
    try:
        assert len(await store.read_stream("s-1")) == 1
        assert not gc.isenabled()
    finally:
        gc.enable()
    await db.execute(
        "INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)"
        " VALUES ('s-2', 1, $1, 'TestCounterIncremented', 1, $2, '{}')",
        uuid.uuid4(),
        {"counter": "c", "by": "many"},
    )
    with pytest.raises(InvalidEvent):
        await store.read_stream("s-2")
    assert gc.isenabled()  # also when decoding fails


async def test_reading_leaves_cycles_to_the_young_collections(store: EventStore) -> None:
    """A page defers the collector while it is built (to_recorded), and nothing more: garbage
    cycles made before a read are still in the young generations afterwards, which the process
    collects on its own every few hundred allocations. (Moving the page to the oldest
    generation with gc.freeze()/unfreeze() took them along, and reset the counts that start
    collections: cycles piled up; bench/README.md issue 16 item 6.)"""
    await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)

    class Node:
        other: object

    def make_cycle() -> weakref.ref[Node]:
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    # Made with the collector off, so that none of them is promoted while still referenced: a
    # collection during make_cycle could otherwise move a live pair to the oldest generation.
    gc.collect()
    gc.disable()
    try:
        cycles = [make_cycle() for _ in range(10)]
    finally:
        gc.enable()
    assert len(await store.read_stream("s-1")) == 1
    gc.collect(1)  # the young and middle generations, not the oldest
    assert all(cycle() is None for cycle in cycles)


async def test_a_recorded_event_is_not_ordered_as_a_tuple(store: EventStore) -> None:
    await store.append("s-1", [bump(1), bump(2)], expected_version=ExpectedVersion.NO_STREAM)
    first, second = await store.read_stream("s-1")
    with pytest.raises(TypeError):
        sorted([second, first])  # a tuple's order is by position; the global order is not


async def all_visible(store: EventStore, count: int) -> None:
    async def visible() -> bool:
        return len(await store.read_all(limit=count + 1)) == count

    await wait_until(visible)


async def test_read_all_pages_gives_read_all_s_pages_and_reads_ahead(
    store: EventStore, db: asyncpg.Pool
) -> None:
    for n in range(5):
        batch = [bump(n * 10 + i, counter=f"c-{n}") for i in range(10)]
        await store.append(f"s-{n}", batch, expected_version=ExpectedVersion.NO_STREAM)
    await store.append("s-other", [NewEvent(Other())], expected_version=ExpectedVersion.NO_STREAM)
    await all_visible(store, 51)
    counters = ["TestCounterIncremented"]
    paged: list[list[RecordedEvent]] = []
    cursor = START
    while page := await store.read_all(after=cursor, limit=7, types=counters):
        paged.append(page)
        cursor = Cursor(page[-1].transaction_id, page[-1].position)
    assert sum(map(len, paged)) == 50

    # What it asked PostgreSQL for before each page was handed over: the next page's query is
    # already sent when a full page is decoded (read-ahead); none after the short last page.
    fetched: list[int] = []
    handed: list[int] = []

    class Watched:
        def __init__(self, conn: asyncpg.Connection) -> None:
            self._conn = conn

        async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
            fetched.append(len(fetched))
            return await self._conn.fetch(query, *args)

    async with db.acquire() as conn:
        pages = []
        async for page in reads.read_all_pages(
            Watched(conn),  # type: ignore[arg-type]
            limit=7,
            types=counters,
        ):
            handed.append(len(fetched))
            pages.append(page)
    assert pages == paged
    assert len(pages) == 8  # seven full pages of 7 and one of 1
    assert handed == [2, 3, 4, 5, 6, 7, 8, 8]

    # The store's own, from the start and after a cursor.
    async with store.read_all_pages(limit=7, types=counters) as pages_of_store:
        assert [p async for p in pages_of_store] == paged
    after = Cursor(paged[2][-1].transaction_id, paged[2][-1].position)
    async with store.read_all_pages(after=after, limit=7, types=counters) as pages_of_store:
        assert [p async for p in pages_of_store] == paged[3:]
    # A log that ends on a full page: one more query, empty, ends it.
    async with store.read_all_pages(limit=17) as pages_of_store:
        assert len([e async for p in pages_of_store for e in p]) == 51
    with pytest.raises(ValueError, match="limit"):
        async with store.read_all_pages(limit=0) as pages_of_store:
            [p async for p in pages_of_store]


async def test_leaving_read_all_pages_early_leaves_its_connection_idle(
    store: EventStore, db: asyncpg.Pool
) -> None:
    await store.append(
        "s-1", [bump(i) for i in range(30)], expected_version=ExpectedVersion.NO_STREAM
    )
    await all_visible(store, 30)
    async with db.acquire() as conn:
        async with aclosing(reads.read_all_pages(conn, limit=10)) as pages:
            async for page in pages:
                assert len(page) == 10
                break  # the second page is in flight now
        assert await conn.fetchval("SELECT count(*) FROM events") == 30
        async with conn.transaction():
            async with aclosing(reads.read_all_pages(conn, limit=10)) as pages:
                async for _ in pages:
                    break
            assert await conn.fetchval("SELECT count(*) FROM events") == 30  # not aborted
    # On the pool: the connection it held goes back, and the pool serves on.
    idle = db.get_idle_size()
    async with store.read_all_pages(limit=10) as pages_of_store:
        async for _ in pages_of_store:
            assert db.get_idle_size() == idle - 1
            break
    assert db.get_idle_size() == idle
    assert len(await store.read_all(limit=100)) == 30


class SlowPages:
    """A connection whose every read after the first spends `seconds` in PostgreSQL first: a
    page in flight long enough to cancel its reader meanwhile."""

    def __init__(self, conn: Connection, seconds: float) -> None:
        self._conn, self._seconds = conn, seconds
        self.reads = 0

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        self.reads += 1
        if self.reads > 1:
            await self._conn.fetch("SELECT pg_sleep($1)", self._seconds)
        return await self._conn.fetch(query, *args)


@pytest.mark.parametrize("where", ["in the loop's body", "awaiting the next page"])
async def test_a_reader_cancelled_with_a_page_in_flight_gets_its_connection_back_idle(
    store: EventStore, db: asyncpg.Pool, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    """Cancelled while the next page is in flight, and cancelled again while leaving (a
    timeout, then a shutdown): the reader ends cancelled, the page's query is not cut off
    (a caller's transaction survives), the connection is idle and nothing is logged as lost."""
    await store.append(
        "s-1", [bump(i) for i in range(30)], expected_version=ExpectedVersion.NO_STREAM
    )
    await all_visible(store, 30)
    for cancels in (1, 2, 3):
        async with db.acquire() as conn, conn.transaction():
            slow = SlowPages(conn, seconds=0.3)
            first_page = asyncio.Event()

            async def read(slow: SlowPages = slow, first_page: asyncio.Event = first_page) -> None:
                pages = reads.read_all_pages(slow, limit=10)  # type: ignore[arg-type]
                async with aclosing(pages):
                    async for _ in pages:
                        first_page.set()
                        if where == "in the loop's body":
                            await asyncio.Event().wait()
                        # else straight on to the next page, 0.3 s away in PostgreSQL

            reader = asyncio.create_task(read())
            await asyncio.wait_for(first_page.wait(), timeout=10)
            for _ in range(cancels):
                reader.cancel()
                await asyncio.sleep(0)
            with pytest.raises(asyncio.CancelledError):
                await reader
            assert await conn.fetchval("SELECT count(*) FROM events") == 30
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
    assert db.get_idle_size() == db.get_size()


async def test_subscriber_never_skips_an_event_committed_out_of_position_order(
    store: EventStore, db: asyncpg.Pool
) -> None:
    """The trap of DESIGN.md section 8: position 1 commits after position 2 was visible."""
    seen: list[int] = []
    cursor = START

    async def poll() -> None:
        nonlocal cursor
        for event in await store.read_all(after=cursor):
            seen.append(event.position)
            cursor = Cursor(event.transaction_id, event.position)

    async with db.acquire() as slow, slow.transaction():
        await store.append("slow", [bump()], expected_version=ExpectedVersion.ANY, connection=slow)
        await store.append("fast", [bump()], expected_version=ExpectedVersion.ANY)
        positions = await db.fetch("SELECT position FROM events ORDER BY position")
        assert [r["position"] for r in positions] == [2]  # the fast one committed
        await poll()
        # A reader by position alone would have seen 2 and moved past 1 for ever.
        assert seen == []

    async def both_seen() -> bool:
        # Another transaction anywhere in the cluster may hold the horizon back for a moment.
        await poll()
        return len(seen) >= 2

    await wait_until(both_seen)
    assert seen == [1, 2]


async def test_ten_thousand_events_across_a_thousand_streams_read_back_complete(
    store: EventStore,
) -> None:
    streams = [f"bulk-{n}" for n in range(1000)]

    async def fill(stream: str) -> None:
        for round_ in range(2):
            batch = [bump(round_ * 5 + i, counter=stream) for i in range(5)]
            await store.append(stream, batch, expected_version=round_ * 5)

    semaphore = asyncio.Semaphore(16)

    async def bounded(stream: str) -> None:
        async with semaphore:
            await fill(stream)

    await asyncio.gather(*(bounded(s) for s in streams))

    everything: list[RecordedEvent] = []
    cursor = START

    async def read_on() -> bool:
        nonlocal cursor
        while page := await store.read_all(after=cursor, limit=997):
            everything.extend(page)
            cursor = Cursor(page[-1].transaction_id, page[-1].position)
        return len(everything) >= 10_000

    await wait_until(read_on, timeout=10)
    assert len(everything) == 10_000
    order = [(e.transaction_id, e.position) for e in everything]
    assert order == sorted(order)
    assert len({e.event_id for e in everything}) == 10_000
    by_stream: dict[str, list[int]] = {}
    for e in everything:
        assert isinstance(e.event, CounterIncremented)
        by_stream.setdefault(e.stream_id, []).append(e.event.by)
    assert all(values == list(range(10)) for values in by_stream.values())
    for stream in ("bulk-0", "bulk-499", "bulk-999"):
        assert [e.version for e in await store.read_stream(stream)] == list(range(1, 11))


async def test_each_event_reads_back_its_own_metadata_and_shared_ones_are_equal(
    store: EventStore,
) -> None:
    shared = EventMetadata(correlation_id="call-1", producer="p", channel="phone")
    metadata = [shared, EventMetadata(correlation_id="call-2"), shared, EventMetadata()]
    batch = [
        NewEvent(CounterIncremented(counter="c", by=n), metadata=m) for n, m in enumerate(metadata)
    ]
    await store.append("s-meta", batch, expected_version=ExpectedVersion.NO_STREAM)

    async def all_visible() -> bool:
        return len(await store.read_all()) == 4

    await wait_until(all_visible)
    for read in (await store.read_all(), await store.read_stream("s-meta")):
        assert [e.metadata for e in read] == metadata
        assert [e.event for e in read] == [new.event for new in batch]
        assert read[0].metadata.model_extra == {"channel": "phone"}


async def test_read_all_filters_by_type(store: EventStore) -> None:
    await store.append("s-1", [bump()], expected_version=ExpectedVersion.ANY)
    await store.append("s-1", [NewEvent(Other())], expected_version=ExpectedVersion.ANY)

    async def both_visible() -> bool:
        return len(await store.read_all()) == 2

    await wait_until(both_visible)
    assert [e.type for e in await store.read_all(types=["TestCounterIncremented"])] == [
        "TestCounterIncremented"
    ]
    assert [e.type for e in await store.read_all(types=["TestOther"])] == ["TestOther"]
    assert await store.read_all(types=["BookingConfirmed"]) == []


async def test_an_append_wakes_listeners_after_it_commits(
    store: EventStore, database_url: str
) -> None:
    woken = asyncio.Event()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("bg_events", lambda *_: woken.set())
        await store.append("s-1", [bump()], expected_version=ExpectedVersion.ANY)
        async with asyncio.timeout(5):
            await woken.wait()
    finally:
        await listener.close()


async def test_appends_during_the_wake_interval_share_one_more_wake_up(
    db: asyncpg.Pool, database_url: str
) -> None:
    # A pool of one connection of its own: stores of earlier tests share the session's loop and
    # may still send their last wake-up, so only NOTIFYs from this backend count.
    pool = await create_pool(database_url, min_size=1, max_size=1)
    store = EventStore(pool, wake_interval=1.0)
    own_pid = await pool.fetchval("SELECT pg_backend_pid()")
    notifications: list[float] = []

    def heard(_: object, pid: int, channel: str, payload: object) -> None:
        if pid == own_pid:
            notifications.append(time.monotonic())

    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("bg_events", heard)
        await store.append("s-1", [bump()], expected_version=ExpectedVersion.NO_STREAM)
        await wait_until(lambda: _at_least(notifications, 1))
        # Within the interval: no NOTIFY of their own, one shared when the interval ends.
        for version in (1, 2, 3):
            await store.append("s-1", [bump()], expected_version=version)
        await wait_until(lambda: _at_least(notifications, 2))
        await store.close()
        assert len(notifications) == 2
    finally:
        await listener.close()
        await pool.close()


async def _at_least(items: list[float], n: int) -> bool:
    return len(items) >= n


async def test_a_number_beyond_64_bits_reads_back_as_the_service_can_answer_it(
    store: EventStore,
) -> None:
    """Free-form fields (Retell's call_analysis here) may hold any JSON number. orjson, which
    writes every answer, parses one beyond 64 bits as a float and cannot write it as an int:
    read back, the event must carry what orjson can answer, or the audit timeline and the feed
    that show it answer 500 for good."""
    huge = 123456789012345678901
    analyzed = RetellCallAnalyzed(
        call_id="call_huge",
        call_analysis={"score": huge, "below": -9223372036854775809, "fits": 2**63 - 1},
    )
    meta = EventMetadata(correlation_id="call_huge", extra_count=huge)
    await store.append("call-huge", [NewEvent(analyzed, metadata=meta)], expected_version=0)
    [recorded] = await store.read_stream("call-huge")
    answer = orjson.loads(
        orjson.dumps(
            {
                "event": recorded.event.model_dump(mode="json"),
                "metadata": recorded.metadata.model_dump(mode="json"),
            }
        )
    )
    assert answer["event"]["call_analysis"] == {
        "score": float(huge),
        "below": float(-9223372036854775809),
        "fits": 2**63 - 1,
    }
    assert answer["metadata"]["extra_count"] == float(huge)
