"""Migration directories for tests: copies of the real files, plus a test migration after them."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from events.migrate import MIGRATIONS_DIR, Migration, load_migrations


def copy_migrations(directory: Path, migrations: Sequence[Migration]) -> Path:
    """A migrations directory holding copies of these files, byte for byte (same checksums)."""
    directory.mkdir(parents=True, exist_ok=True)
    for migration in migrations:
        shutil.copy(MIGRATIONS_DIR / f"{migration.label}.sql", directory)
    return directory


# What a later issue's migration might do to a live database: an index on the ledger (a share
# lock on `events` while appends go on) and a column with a default on a table holding rows.
# Not idempotent on purpose: run twice, it fails.
LIVE_CHANGE = """
CREATE INDEX events_recorded_at ON events (recorded_at);
ALTER TABLE appointments ADD COLUMN note text NOT NULL DEFAULT '';
"""


def with_test_migration(directory: Path, sql: str = LIVE_CHANGE) -> tuple[Path, str]:
    """Every real migration plus one test migration after them; the directory and its label."""
    real = load_migrations()
    copy_migrations(directory, real)
    label = f"{len(real) + 1:04d}_test_live_change"
    (directory / f"{label}.sql").write_text(sql)
    return directory, label
