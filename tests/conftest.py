"""Fixtures shared by every test layer: a real PostgreSQL database created for this run.

With DATABASE_URL set, the run creates its own database on that server and drops it at the end;
otherwise it starts the embedded PostgreSQL in .pytest-postgres/ (or BOOKING_GUARD_TEST_DATA_DIR).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from events.database import create_pool, start_embedded, stop_embedded
from events.migrate import MIGRATIONS_TABLE, migrate
from service.settings import ENV_FILE_VARIABLE

ROOT = Path(__file__).resolve().parent.parent
# A developer's .env in the working directory must change no test (service/settings.py reads it
# unless this says otherwise); set before any test builds Settings, inherited by the processes
# the tests start.
os.environ[ENV_FILE_VARIABLE] = ""
T = TypeVar("T")


def _with_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database."""
    base, _, query = dsn.partition("?")
    scheme, _, rest = base.partition("://")
    authority, _, _ = rest.partition("/")
    url = f"{scheme}://{authority}/{database}"
    return f"{url}?{query}" if query else url


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A DSN to a PostgreSQL server we may create databases on."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    data_dir = Path(os.environ.get("BOOKING_GUARD_TEST_DATA_DIR", ROOT / ".pytest-postgres"))
    yield start_embedded(data_dir)
    # Leave no server behind: a CI clone is deleted after its run.
    stop_embedded(data_dir)


@pytest.fixture(scope="session")
def database_url(server_dsn: str) -> Iterator[str]:
    """A database of this test run's own, dropped when the run ends."""
    name = f"bg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server_dsn, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test database, migrated from zero (so every run exercises the migrations)."""
    pool = await create_pool(database_url, min_size=2, max_size=20)
    await migrate(pool)
    yield pool
    await pool.close()


@pytest.fixture
async def db(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The pool, with every table emptied first, so each test starts from nothing."""
    # Not schema_migrations: emptied, it would say the database was never migrated.
    tables = await pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> $1",
        MIGRATIONS_TABLE,
    )
    names = ", ".join(f'"{row["tablename"]}"' for row in tables)
    if names:
        await pool.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    return pool


async def wait_until(
    predicate: Callable[[], Awaitable[T]], *, timeout: float = 5.0, interval: float = 0.01
) -> T:
    """Await `predicate` until it returns something truthy; fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = await predicate()
            if result:
                return result
            await asyncio.sleep(interval)
