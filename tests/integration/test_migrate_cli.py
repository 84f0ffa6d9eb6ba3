"""The commands on a database behind and after `booking-guard db migrate`, as real processes.

Only `db migrate` (and `serve` with BOOKING_GUARD_AUTO_MIGRATE, its default) changes the schema;
every other command says the database is behind, names `booking-guard db migrate`, exits non-zero
and leaves the database as it found it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from events.migrate import load_migrations
from service.settings import ENV_FILE_VARIABLE
from tests.integration.conftest import NewDatabase

ROOT = Path(__file__).resolve().parent.parent.parent
# The developer's shell settings must not reach the commands under test.
_SCRUBBED = ("DATABASE_URL", "CALCOM_API_KEY", "CALCOM_BASE_URL", "BOOKING_GUARD_")


@dataclass(frozen=True)
class Ran:
    status: int
    out: str
    err: str


async def booking_guard(dsn: str, *args: str, **settings: str) -> Ran:
    """Run `booking-guard <args>` against `dsn` and wait for it (at most 60 s)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    env[ENV_FILE_VARIABLE] = ""  # a developer's .env in ROOT is no setting of the test's
    env.update(DATABASE_URL=dsn, BOOKING_GUARD_LOG_FORMAT="json", **settings)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli.main",
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:  # a `serve` that started after all: fail, leave none
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return sorted(row["tablename"] for row in rows)


@pytest.mark.slow  # six processes starting at once
async def test_commands_on_a_database_behind_refuse_and_write_nothing(
    new_database: NewDatabase,
) -> None:
    dsn = await new_database()
    head = len(load_migrations())
    audit, projections, replay, resume, db_status, serve = await asyncio.gather(
        booking_guard(dsn, "audit", "call", "call_687"),
        booking_guard(dsn, "projections", "status"),
        booking_guard(dsn, "replay"),
        booking_guard(dsn, "projections", "resume", "rejections"),
        booking_guard(dsn, "db", "status"),
        booking_guard(dsn, "serve", "--port", "0", BOOKING_GUARD_AUTO_MIGRATE="false"),
    )

    behind = f"the database schema is at version 0, this code needs version {head}"
    for ran in (audit, projections, replay, resume, serve):
        assert ran.status == 1, ran
        assert behind in ran.err, ran
        assert "run `booking-guard db migrate`" in ran.err, ran
    assert "BOOKING_GUARD_AUTO_MIGRATE is false" in serve.err
    assert db_status.status == 1, db_status
    assert db_status.out.splitlines()[0] == f"schema version 0 of {head}: {head} pending"
    assert "  pending  0001_baseline" in db_status.out
    assert "run `booking-guard db migrate` to apply them" in db_status.out
    assert await tables(dsn) == []


async def test_db_migrate_applies_what_is_pending_then_finds_nothing(
    new_database: NewDatabase,
) -> None:
    dsn = await new_database()
    migrations = load_migrations()
    head = len(migrations)

    first = await booking_guard(dsn, "db", "migrate")
    assert first.status == 0, first
    lines = first.out.splitlines()
    assert [line.split(" in ")[0] for line in lines[:-1]] == [
        f"[{n}/{head}] applied {m.label}" for n, m in enumerate(migrations, start=1)
    ]
    assert lines[-1] == f"now at version {head}"

    again, status, audit = await asyncio.gather(
        booking_guard(dsn, "db", "migrate"),
        booking_guard(dsn, "db", "status"),
        booking_guard(dsn, "audit", "call", "call_687"),
    )
    assert (again.status, again.out) == (0, f"already at version {head}\n")
    assert status.status == 0, status
    assert status.out.splitlines()[0] == f"schema version {head} of {head}: up to date"
    assert "  applied  0001_baseline  " in status.out
    # audit now reads: the call has no events (exit 1), and nothing is said about the schema.
    assert (audit.status, audit.out, audit.err) == (1, "call call_687: no events\n", "")
    assert "schema_migrations" in await tables(dsn)
