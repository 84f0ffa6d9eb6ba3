"""Replay against a real PostgreSQL: invariant 3, the atomic swap, and catching up live writes."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from events.booking import (
    BookingCancelled,
    BookingConfirmed,
    BookingRejected,
    BookingRescheduled,
)
from events.database import create_pool, schema_sql
from events.models import Event, NewEvent
from events.store import EventStore, ExpectedVersion
from projections import appointments, appointments_replay, catalog, checkpoints, rejections
from projections.projectors import run_projectors
from projections.rebuild import Phase, Progress, RebuildError, rebuild, rebuild_all
from tests.conftest import wait_until
from tests.integration.test_projector import horizon_passed, last_appended

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(db: asyncpg.Pool) -> EventStore:
    return EventStore(db)


def confirmed(uid: str, call_id: str, minute: int = 0) -> BookingConfirmed:
    at = T0 + timedelta(minutes=minute)
    return BookingConfirmed(
        attempt_id=uuid.uuid4(),
        appointment_id=uuid.uuid4(),
        call_id=call_id,
        booking_uid=uid,
        booking_id=minute,
        event_type_id=7,
        start=at + timedelta(days=1),
        end=at + timedelta(days=1, minutes=30),
        attendee_name=f"caller of {call_id}",
        attendee_email=f"termin+{call_id}@example.com",
        confirmed_at=at,
    )


def cancelled(uid: str, minute: int) -> BookingCancelled:
    return BookingCancelled(booking_uid=uid, cancelled_at=T0 + timedelta(minutes=minute))


def rescheduled(uid: str, new_uid: str, minute: int) -> BookingRescheduled:
    at = T0 + timedelta(minutes=minute)
    return BookingRescheduled(
        booking_uid=uid, new_booking_uid=new_uid, start=at + timedelta(days=2), rescheduled_at=at
    )


def rejected(call_id: str, reason: str, minute: int, uid: str | None = None) -> BookingRejected:
    return BookingRejected(
        attempt_id=uuid.uuid4(),
        call_id=call_id,
        guard="freshness" if reason == "stale_booking" else "call_identity",
        layer=1,
        reason=reason,
        detail={"age_seconds": 2100},
        booking_uid=uid,
        rejected_at=T0 + timedelta(minutes=minute),
    )


async def record(db: asyncpg.Pool, store: EventStore, *events: Event) -> None:
    """Append like the workflow does: the appointments row in the appending transaction."""
    async with db.acquire() as conn, conn.transaction():
        for event in events:
            await appointments.apply(conn, event)
        await store.append(
            f"test-{uuid.uuid4()}",
            [NewEvent(e) for e in events],
            expected_version=ExpectedVersion.NO_STREAM,
            connection=conn,
        )


async def checksum(db: asyncpg.Pool, table: str, key: str) -> tuple[int, str]:
    row = await db.fetchrow(
        f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t.{key}), ''))"
        f" AS sum FROM {table} t"
    )
    assert row is not None
    return row["n"], row["sum"]


async def schema_names(db: asyncpg.Pool, table: str) -> list[str]:
    rows = await db.fetch(
        "SELECT indexname AS name FROM pg_indexes WHERE tablename = $1"
        " UNION SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY 1",
        table,
    )
    return [row["name"] for row in rows]


async def a_booking_log(db: asyncpg.Pool, store: EventStore) -> None:
    """Confirmations, cancellations, reschedules (one cancelled after it moved) and rejections.

    Cal.com never gives a uid to two bookings, so an appointment's chain of uids is its own.
    """
    await record(db, store, confirmed("uid-a", "call-1", 1), cancelled("uid-a", 2))
    await record(db, store, confirmed("uid-b", "call-2", 3))
    await record(db, store, rescheduled("uid-b", "uid-c", 4))
    await record(db, store, confirmed("uid-b2", "call-3", 5), cancelled("uid-c", 6))
    await record(db, store, confirmed("uid-687", "687", 10))
    await record(db, store, rejected("688", "stale_booking", 45, uid="uid-687"))
    await record(db, store, rejected("689", "call_id_mismatch", 46, uid="uid-687"))
    for n in range(40):
        await record(db, store, confirmed(f"uid-{n}", f"call-{n}", 100 + n))
    await record(db, store, rescheduled("uid-3", "uid-3b", 200), cancelled("uid-3b", 201))
    odd = confirmed("uid-odd\\N", "call-odd", 300).model_copy(
        update={"attendee_name": "Tab\there, line\nbreak, CR\r, back\\slash, \\N", "end": None}
    )
    await record(db, store, odd)


async def test_dropped_projections_replay_to_identical_tables(
    db: asyncpg.Pool, store: EventStore
) -> None:
    """DESIGN.md §3 invariant 3: drop every projection table, replay, byte-identical rows."""
    await a_booking_log(db, store)
    async with run_projectors(db, store, catalog.asynchronous(), poll_interval=0.02) as running:
        await running["rejections"].wait_for(await last_appended(db))
    before = {
        "appointments": await checksum(db, "appointments", "appointment_id"),
        "rejections": await checksum(db, "rejections", "event_id"),
    }
    names = {t: await schema_names(db, t) for t in before}
    assert before["appointments"][0] == 45
    assert before["rejections"][0] == 2

    await db.execute("DROP TABLE appointments, rejections")
    await db.execute("DELETE FROM projection_checkpoints")
    # Start-up no longer touches a migrated schema; schema.sql is idempotent, and running it
    # (`psql -f schema.sql`) brings the dropped tables back, empty.
    await db.execute(schema_sql())
    await horizon_passed(db)  # rejections' replay reads behind it, as its runner would
    for projection in catalog.all_projections().values():
        await rebuild(db, projection, batch_size=7)

    assert {t: await checksum(db, t, k) for t, k in _KEYS} == before
    assert {t: await schema_names(db, t) for t in before} == names
    last = (await store.read_all(types=["BookingRejected"]))[-1]
    stored = await checkpoints.read(db, "rejections")
    assert stored.cursor == (last.transaction_id, last.position)


_KEYS = (("appointments", "appointment_id"), ("rejections", "event_id"))


@pytest.mark.parametrize("batch_size", [1, 3, 10_000])
async def test_batched_replay_writes_what_apply_writes_event_by_event(
    db: asyncpg.Pool, store: EventStore, batch_size: int
) -> None:
    await a_booking_log(db, store)
    live = await checksum(db, "appointments", "appointment_id")
    live_states = await checksum(db, "booking_states", "booking_uid")
    made: list[appointments_replay.AppointmentsReplayer] = []

    def replayer() -> appointments_replay.AppointmentsReplayer:
        made.append(appointments_replay.AppointmentsReplayer())
        return made[-1]

    projection = dataclasses.replace(appointments_replay.PROJECTION, replayer=replayer)
    await horizon_passed(db)  # what replay cannot see yet the catch-up applies, off this path
    result = await rebuild(db, projection, batch_size=batch_size)
    assert result.events == 50
    assert await checksum(db, "appointments", "appointment_id") == live
    assert await checksum(db, "booking_states", "booking_uid") == live_states
    # The 42 uids of one confirmation that nothing else names were written in PostgreSQL; the
    # fold was given the three others' events only.
    assert made[0].lone == 42
    folded = {row[13] for row in made[0].fold.appointment_records()}
    assert folded == {"uid-a", "uid-b", "uid-3"}


async def test_unique_index_keeps_its_name_and_refuses_duplicates_after_a_swap(
    db: asyncpg.Pool, store: EventStore
) -> None:
    await record(db, store, confirmed("uid-1", "687"))
    await rebuild(db, appointments_replay.PROJECTION)
    with pytest.raises(appointments.AppointmentExists):
        await record(db, store, confirmed("uid-1", "688"))


async def test_readers_keep_reading_through_the_swap(db: asyncpg.Pool, store: EventStore) -> None:
    for n in range(30):
        await record(db, store, *(confirmed(f"uid-{n}-{i}", f"call-{n}") for i in range(10)))
    count = "SELECT count(*) FROM appointments"
    async with db.acquire() as holder, db.acquire() as queued:
        assert await queued.fetchval(count) == 300  # its prepared statement predates the swap
        reads: list[int] = []

        async def keep_reading() -> None:
            while True:
                reads.append(await db.fetchval(count))

        reader = asyncio.create_task(keep_reading())
        # A reader inside a transaction makes the swap wait for its lock ...
        async with holder.transaction():
            assert await holder.fetchval(count) == 300
            replay = asyncio.create_task(rebuild(db, appointments_replay.PROJECTION, batch_size=50))
            await wait_until(lambda: _swap_is_waiting(db))
            # ... and a reader arriving now queues behind the swap and reads the new table.
            behind_swap = asyncio.create_task(queued.fetchval(count))
            await wait_until(lambda: _waiting_locks(db, 2))
        assert await behind_swap == 300
        await replay
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert len(reads) > 1
    assert set(reads) == {300}


async def _swap_is_waiting(db: asyncpg.Pool) -> bool:
    return await _waiting_locks(db, 1)


async def _waiting_locks(db: asyncpg.Pool, n: int) -> bool:
    waiting: int = await db.fetchval(
        "SELECT count(*) FROM pg_locks WHERE relation = 'appointments'::regclass AND NOT granted"
    )
    return waiting >= n


async def test_bookings_confirmed_during_the_replay_are_in_the_new_table(
    db: asyncpg.Pool, store: EventStore
) -> None:
    for n in range(20):
        await record(db, store, *(confirmed(f"uid-{n}-{i}", f"call-{n}") for i in range(10)))
    written = 0
    progress: list[Progress] = []

    async def keep_booking() -> None:
        nonlocal written
        while True:
            await record(db, store, confirmed(f"live-{written}", "live"))
            written += 1

    writer = asyncio.create_task(keep_booking())
    await wait_until(lambda: _at_least(lambda: written, 3))
    result = await rebuild(
        db, appointments_replay.PROJECTION, batch_size=20, on_progress=progress.append
    )
    await wait_until(lambda: _at_least(lambda: written, result.events - 200 + 3))
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    confirmations = await db.fetchval("SELECT count(*) FROM events WHERE type = 'BookingConfirmed'")
    assert await db.fetchval("SELECT count(*) FROM appointments") == confirmations
    live = await checksum(db, "appointments", "appointment_id")
    await rebuild(db, appointments_replay.PROJECTION)
    assert await checksum(db, "appointments", "appointment_id") == live
    assert progress[-1].done == result.events
    assert [p.done for p in progress] == sorted(p.done for p in progress)


async def _at_least(value: object, n: int) -> bool:
    assert callable(value)
    return bool(value() >= n)


async def test_replay_of_a_runner_projection_moves_its_checkpoint_and_it_carries_on(
    db: asyncpg.Pool, store: EventStore
) -> None:
    await record(db, store, rejected("1", "stale_booking", 1))
    await checkpoints.ensure(db, "rejections")
    await checkpoints.mark_failed(db, "rejections", "a bug, since fixed")
    await horizon_passed(db)
    result = await rebuild(db, rejections.PROJECTION)
    assert result.events == 1
    stored = await checkpoints.read(db, "rejections")
    assert (stored.state, stored.cursor, stored.error) == ("running", result.cursor, None)
    async with run_projectors(db, store, [rejections.PROJECTION], poll_interval=0.02) as running:
        await record(db, store, rejected("2", "stale_booking", 2))
        await running["rejections"].wait_for(await last_appended(db))
    assert await db.fetchval("SELECT count(*) FROM rejections") == 2


@pytest.mark.parametrize(("pool_size", "at_once"), [(4, True), (3, False)])
async def test_replay_of_all_rebuilds_them_at_once_when_the_pool_has_the_connections(
    db: asyncpg.Pool, store: EventStore, database_url: str, pool_size: int, at_once: bool
) -> None:
    await a_booking_log(db, store)
    await horizon_passed(db)
    live = await checksum(db, "appointments", "appointment_id")
    heard: list[tuple[str, Phase]] = []
    pool = await create_pool(database_url, min_size=1, max_size=pool_size)
    try:
        results = await rebuild_all(
            pool,
            list(catalog.all_projections().values()),
            batch_size=7,
            on_phase=lambda name, phase: heard.append((name, phase)),
        )
    finally:
        await pool.close()
    assert [(r.projection, r.events) for r in results] == [("appointments", 50), ("rejections", 2)]
    assert await checksum(db, "appointments", "appointment_id") == live
    assert await db.fetchval("SELECT count(*) FROM rejections") == 2
    # At once: rejections begin before appointments are swapped in; else strictly after.
    rejections_begin = heard.index(("rejections", Phase.COUNTING))
    appointments_end = heard.index(("appointments", Phase.SWAPPING))
    assert (rejections_begin < appointments_end) is at_once


async def test_replay_of_all_at_once_raises_a_rebuilds_own_error(
    db: asyncpg.Pool, database_url: str
) -> None:
    """Rebuilt at once, a failing rebuild still raises its RebuildError (which the CLI reports
    as one line), not the TaskGroup's ExceptionGroup (which it would print as a traceback)."""
    holder = await asyncpg.connect(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=4)
    try:
        taken = "SELECT pg_advisory_lock(hashtextextended('bg-rebuild:' || $1, 0))"
        await holder.execute(taken, "rejections")  # another replay of rejections is running
        with pytest.raises(RebuildError, match="rejections is already running"):
            await rebuild_all(pool, list(catalog.all_projections().values()), batch_size=7)
    finally:
        await pool.close()
        await holder.close()
