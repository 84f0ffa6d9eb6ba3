"""Upgrades of databases holding data: from before migrations, from the baseline through
`db migrate`, and a new migration over a database serving bookings."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from events.calls import RetellCallEnded, RetellCallStarted, call_stream
from events.migrate import (
    applied_migrations,
    current_version,
    load_migrations,
    migrate,
    pending,
)
from events.models import NewEvent
from events.store import EventStore, ExpectedVersion
from service.cli.db import migrate_command
from service.settings import Settings
from tests.conftest import wait_until
from tests.integration.conftest import NewDatabase, OpenPool
from tests.integration.migration_dirs import copy_migrations, with_test_migration

# Rows written as the baseline's columns are, not through today's code: an upgrade starts from a
# database that older code wrote.
_APPOINTMENT = """
INSERT INTO appointments (appointment_id, booking_uid, booking_id, call_id, attempt_id,
                          event_type_id, start_at, end_at, attendee_name, attendee_email,
                          status, confirmed_at, updated_at)
VALUES ($1, 'uid-migrated', 42, 'call-migrated', $2, 1001, $3, $4, 'Hans Schuster',
        'hans@example.com', 'booked', $5, $5)
"""
_IDEMPOTENCY_KEY = """
INSERT INTO idempotency_keys (key, fingerprint, attempt_id, status, response_status,
                              response_body, holder, first_called_at, attempt_ids, finished_at)
VALUES ('key-migrated', 'fp', $1, 'finished', 201, '{"status": "confirmed"}', 'host:1', $2,
        ARRAY[$1]::uuid[], $2)
"""
_CHECKPOINT = "INSERT INTO projection_checkpoints (name, position) VALUES ('rejections', 7)"
_TABLES = {
    "events": "position",
    "appointments": "appointment_id",
    "idempotency_keys": "key",
    "projection_checkpoints": "name",
}


async def _has_column(pool: asyncpg.Pool, table: str, column: str) -> bool:
    found = await pool.fetchval(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
        table,
        column,
    )
    return bool(found)


async def put_data(pool: asyncpg.Pool) -> dict[str, list[dict[str, Any]]]:
    """Events appended through the store, an appointment, an idempotency key, a checkpoint;
    return every row of those tables."""
    store = EventStore(pool)
    for call in ("mig-1", "mig-2"):
        await store.append(
            call_stream(call),
            [
                NewEvent(RetellCallStarted(call_id=call, from_number="+4930123456")),
                NewEvent(RetellCallEnded(call_id=call, disconnection_reason="user_hangup")),
            ],
            expected_version=ExpectedVersion.NO_STREAM,
        )
    await store.close()
    attempt = uuid.uuid4()
    moment = datetime(2025, 10, 6, 9, 4, 27, tzinfo=UTC)
    start = moment + timedelta(days=4)
    # The rows as the version the database is at holds them (later versions add columns).
    appointment, key = _APPOINTMENT, _IDEMPOTENCY_KEY
    if await _has_column(pool, "appointments", "origin_uid"):
        appointment = appointment.replace("updated_at)", "updated_at, origin_uid)").replace(
            "$5, $5)", "$5, $5, 'uid-migrated')"
        )
    if not await _has_column(pool, "idempotency_keys", "response_status"):
        key = key.replace("status, response_status,", "status,").replace(
            "'finished', 201,", "'finished',"
        )
    await pool.execute(
        appointment, uuid.uuid4(), attempt, start, start + timedelta(minutes=30), moment
    )
    await pool.execute(key, attempt, moment)
    await pool.execute(_CHECKPOINT)
    return await rows_of(pool)


# Columns a migration drops on purpose, with the migration that says why.
DROPPED = {("idempotency_keys", "response_status")}  # 0002: the edge picks HTTP statuses


async def rows_of(
    pool: asyncpg.Pool, like: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every row of the data tables; with `like`, only the columns `like` has (a migration may
    add columns: the data that was there must be there still)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for table, key in _TABLES.items():
        rows = [
            {c: v for c, v in dict(row).items() if (table, c) not in DROPPED}
            for row in await pool.fetch(f"SELECT * FROM {table} ORDER BY {key}")
        ]
        if like is not None and like[table]:
            columns = like[table][0].keys()
            rows = [{c: row[c] for c in columns} for row in rows]
        found[table] = rows
    return found


async def assert_events_read_back(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    for call in ("mig-1", "mig-2"):
        events = await store.read_stream(call_stream(call))
        assert [type(e.event) for e in events] == [RetellCallStarted, RetellCallEnded]
        assert events[1].event == RetellCallEnded(call_id=call, disconnection_reason="user_hangup")


async def test_a_database_from_before_migrations_is_adopted_with_its_data(
    new_database: NewDatabase, open_pool: OpenPool
) -> None:
    """The start-up before migrations ran the baseline's SQL and left no schema_migrations."""
    pool = await open_pool(await new_database())
    await pool.execute(load_migrations()[0].sql)
    before = await put_data(pool)
    async with pool.acquire() as conn:
        assert await current_version(conn) == 0

    applied = await migrate(pool)

    # The baseline ran over the tables already there (it is idempotent) and was recorded.
    assert [m.label for m in applied] == [m.label for m in load_migrations()]
    async with pool.acquire() as conn:
        assert await current_version(conn) == len(load_migrations())
        assert await pending(conn) == []
    assert await rows_of(pool, like=before) == before
    await assert_events_read_back(pool)


async def test_a_baseline_database_with_data_upgrades_through_db_migrate(
    new_database: NewDatabase, open_pool: OpenPool, tmp_path: Path
) -> None:
    """Written for every later migration: build at version 1, add data, `db migrate` to head."""
    dsn = await new_database()
    pool = await open_pool(dsn)
    baseline, *later = load_migrations()
    await migrate(pool, copy_migrations(tmp_path / "baseline", [baseline]))
    before = await put_data(pool)

    out = io.StringIO()
    assert await migrate_command(Settings(database_url=dsn), out=out) == 0

    lines = out.getvalue().splitlines()
    assert [line.split(" in ")[0] for line in lines[:-1]] == [
        f"[{n}/{len(later)}] applied {m.label}" for n, m in enumerate(later, start=1)
    ]
    head = baseline.version + len(later)
    assert lines[-1] == (f"now at version {head}" if later else f"already at version {head}")
    assert await rows_of(pool, like=before) == before
    await assert_events_read_back(pool)


_WAITING_ON_EVENTS = """
SELECT count(*) FROM pg_locks WHERE relation = 'events'::regclass AND NOT granted
"""


async def test_a_new_migration_applies_to_a_live_database_with_data(
    new_database: NewDatabase, open_pool: OpenPool, tmp_path: Path
) -> None:
    """The migration waits for a booking's open transaction, bookings arriving meanwhile wait
    for the migration, and all of them land."""
    pool = await open_pool(await new_database(), max_size=6)
    await migrate(pool)
    before = await put_data(pool)
    directory, label = with_test_migration(tmp_path / "next")
    store = EventStore(pool)

    async def waiting_on_events(count: int) -> bool:
        return bool(await pool.fetchval(_WAITING_ON_EVENTS) == count)

    async with pool.acquire() as booking, booking.transaction():
        started = NewEvent(RetellCallStarted(call_id="live-1"))
        await store.append("live-1", [started], expected_version=0, connection=booking)
        migration = asyncio.create_task(migrate(pool, directory))
        await wait_until(lambda: waiting_on_events(1))
        arriving = asyncio.create_task(
            store.append(
                "live-2", [NewEvent(RetellCallStarted(call_id="live-2"))], expected_version=0
            )
        )
        await wait_until(lambda: waiting_on_events(2))
    applied, version = await asyncio.wait_for(asyncio.gather(migration, arriving), timeout=30)
    await store.close()

    assert [m.label for m in applied] == [label]
    assert version == 1
    assert [len(await store.read_stream(s)) for s in ("live-1", "live-2")] == [1, 1]
    after = await rows_of(pool, like=before)
    after["events"] = [row for row in after["events"] if not row["stream_id"].startswith("live")]
    assert after == before
    assert await pool.fetchval("SELECT array_agg(note) FROM appointments") == [""]
    assert await pool.fetchval("SELECT to_regclass('events_recorded_at') IS NOT NULL")
    async with pool.acquire() as conn:
        recorded = await applied_migrations(conn)
    files = load_migrations(directory)
    assert [(r.version, r.name, r.checksum) for r in recorded] == [
        (m.version, m.name, m.checksum) for m in files
    ]
