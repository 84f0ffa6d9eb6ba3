"""Versioned schema migrations: numbered SQL files, each applied once, in order, under a lock.

`events/migrations/000N_name.sql` take a database from any earlier version to the current schema
(schema.sql holds the same schema whole, to read; tests/integration/test_migrations.py keeps the
two equal). `schema_migrations` records every applied file with its checksum.

Starting on a current database costs one SELECT and takes no lock. The start-up this replaces ran
schema.sql every time, and its `CREATE INDEX IF NOT EXISTS` lines took table locks in the opposite
order to a booking's writes: every process started under traffic deadlocked live bookings.

When something is pending, each migration runs in a transaction of its own under a
transaction-level advisory lock, and is skipped when another process applied it while this one
waited, so any number of processes starting together apply each migration once. (Being inside a
transaction, a migration cannot use `CREATE INDEX CONCURRENTLY`.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from events.store import Connection

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATIONS_TABLE = "schema_migrations"
_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql")

# The key the start-up before migrations took to apply schema.sql: a process of that release
# starting during an upgrade waits for a migration in progress instead of running beside it.
LOCK_KEY = 0x6267_5343  # "bgSC"
# A migration waiting for a table lock queues every booking behind it; better to give up the
# lock queue after a while, let the traffic through, and try again.
LOCK_TIMEOUT = "5s"
ATTEMPTS = 5
_RETRYABLE: tuple[type[BaseException], ...] = (
    asyncpg.LockNotAvailableError,  # 55P03: lock_timeout
    asyncpg.DeadlockDetectedError,  # 40P01
    asyncpg.SerializationError,  # 40001
)

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY CHECK (version > 0),
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""
_LOCK = "SELECT pg_advisory_xact_lock($1)"
_SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', $1, true)"
_RECORD = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


class MigrationError(Exception):
    """The schema cannot be brought to, or is not at, the version this code needs."""


class InvalidMigrations(MigrationError):
    """The migrations directory, or the order they were applied in, is not what it must be."""


class ChecksumMismatch(MigrationError):
    """A migration's file differs from the one applied to this database."""

    def __init__(self, label: str, applied: str, found: str) -> None:
        super().__init__(
            f"migration {label} was applied with checksum {applied[:12]}…, but its file now has"
            f" {found[:12]}…: an applied migration must never change; restore the file and add"
            " a new migration for the change"
        )
        self.label = label


@dataclass(frozen=True, slots=True)
class Migration:
    """One file of the migrations directory."""

    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        """`0001_baseline`: the file name without `.sql`."""
        return f"{self.version:04d}_{self.name}"

    @property
    def checksum(self) -> str:
        """SHA-256 of the text; line endings normalised, so a Windows checkout matches."""
        return hashlib.sha256(self.sql.replace("\r\n", "\n").encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """One row of `schema_migrations`."""

    version: int
    name: str
    checksum: str
    applied_at: datetime

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a database stands against a migrations directory."""

    current: int
    head: int
    applied: list[AppliedMigration]
    pending: list[Migration]
    # Applied versions without a file here: a newer release migrated this database.
    unknown: list[AppliedMigration]


class SchemaBehind(MigrationError):
    """The database lacks migrations this code needs; nothing was changed."""

    def __init__(self, status: SchemaStatus) -> None:
        names = ", ".join(m.label for m in status.pending)
        super().__init__(
            f"the database schema is at version {status.current}, this code needs version"
            f" {status.head} (pending: {names})"
        )
        self.status = status


@dataclass(frozen=True, slots=True)
class Progress:
    """One migration applied by `migrate`: the `number`th of the `total` it found pending."""

    migration: Migration
    number: int
    total: int
    seconds: float


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in `directory`, by version: `0001_name.sql`, `0002_...`, with no gap."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise InvalidMigrations(
                f"{path}: a migration is named like 0002_add_something.sql (four digits,"
                " lower-case words)"
            )
        found.append(
            Migration(int(match["version"]), match["name"], path.read_text(encoding="utf-8"))
        )
    if not found:
        # Never "nothing pending": a package built without its migrations would serve an empty
        # database.
        raise InvalidMigrations(f"no migrations in {directory}")
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise InvalidMigrations(
            f"the migrations in {directory} must be numbered 1, 2, 3, ... without gaps or"
            f" repeats; found {versions}"
        )
    return found


_APPLIED = "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"


async def applied_migrations(conn: Connection) -> list[AppliedMigration]:
    """The rows of `schema_migrations`; none when the database was never migrated.

    One statement, so that a start on a current database costs one SELECT. Call it outside a
    transaction: on a database never migrated the statement fails, which would abort one.
    """
    try:
        rows = await conn.fetch(_APPLIED)
    except asyncpg.UndefinedTableError:
        return []
    return [AppliedMigration(**dict(row)) for row in rows]


async def current_version(conn: Connection) -> int:
    """The highest version applied to the database; 0 when it was never migrated."""
    applied = await applied_migrations(conn)
    return applied[-1].version if applied else 0


def compare(applied: Sequence[AppliedMigration], migrations: Sequence[Migration]) -> SchemaStatus:
    """Where `applied` stands against `migrations`; refuses a changed or skipped migration."""
    by_version = {m.version: m for m in migrations}
    for row in applied:
        known = by_version.get(row.version)
        if known is not None and known.checksum != row.checksum:
            raise ChecksumMismatch(known.label, row.checksum, known.checksum)
    done = {row.version for row in applied}
    pending = [m for m in migrations if m.version not in done]
    current = max(done, default=0)
    if pending and pending[0].version < current:
        raise InvalidMigrations(
            f"migration {pending[0].label} is pending but version {current} is already applied:"
            " a new migration is numbered after the last one applied anywhere"
        )
    return SchemaStatus(
        current=current,
        head=migrations[-1].version if migrations else 0,
        applied=list(applied),
        pending=pending,
        unknown=[row for row in applied if row.version not in by_version],
    )


async def status(conn: Connection, directory: Path = MIGRATIONS_DIR) -> SchemaStatus:
    """The database's version, what is pending, and what it has that this code does not know."""
    return compare(await applied_migrations(conn), load_migrations(directory))


async def pending(conn: Connection, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations not yet applied to the database, in the order they will be."""
    return (await status(conn, directory)).pending


async def require_current(pool: asyncpg.Pool, directory: Path = MIGRATIONS_DIR) -> SchemaStatus:
    """The database's status; SchemaBehind when a migration is pending. Writes nothing."""
    async with pool.acquire() as conn:
        found = await status(conn, directory)
    if found.pending:
        raise SchemaBehind(found)
    return found


async def migrate(
    pool: asyncpg.Pool,
    directory: Path = MIGRATIONS_DIR,
    *,
    on_applied: Callable[[Progress], None] | None = None,
) -> list[Migration]:
    """Apply the pending migrations, each once and in its own transaction; return those applied
    here (another process may have applied some of them meanwhile)."""
    migrations = load_migrations(directory)
    async with pool.acquire() as conn:
        # Checked before any lock is taken, so that a start on a current database writes nothing.
        found = compare(await applied_migrations(conn), migrations)
        if found.unknown:
            log.warning(
                "the database has migrations this release does not know (%s): a newer release"
                " migrated it",
                ", ".join(row.label for row in found.unknown),
            )
        applied: list[Migration] = []
        for number, migration in enumerate(found.pending, start=1):
            seconds = await _apply_once(conn, migration, migrations)
            if seconds is None:
                continue
            applied.append(migration)
            log.info("applied migration %s in %.2f s", migration.label, seconds)
            if on_applied is not None:
                on_applied(Progress(migration, number, len(found.pending), seconds))
    return applied


async def _apply_once(
    conn: Connection, migration: Migration, migrations: Sequence[Migration]
) -> float | None:
    """Apply one migration unless it is applied by now; its duration, or None when skipped."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with conn.transaction():
                await conn.execute(_LOCK, LOCK_KEY)
                # Checked again under the lock: another process may have applied it meanwhile.
                await conn.execute(_CREATE_TABLE)
                found = compare(await applied_migrations(conn), migrations)
                if migration not in found.pending:
                    return None
                await conn.execute(_SET_LOCK_TIMEOUT, LOCK_TIMEOUT)
                started = time.monotonic()
                await conn.execute(migration.sql)
                await conn.execute(_RECORD, migration.version, migration.name, migration.checksum)
            return time.monotonic() - started
        except _RETRYABLE as e:
            if attempt == ATTEMPTS:
                raise MigrationError(
                    f"migration {migration.label} gave up after {ATTEMPTS} attempts: {e}"
                ) from e
            log.warning(
                "migration %s: %s; rolled back, trying again (%d of %d)",
                migration.label,
                e,
                attempt + 1,
                ATTEMPTS,
            )
            # A pause before the next try lets the transactions we conflicted with finish.
            await asyncio.sleep(0.2 * attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")
