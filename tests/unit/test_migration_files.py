"""The migrations directory and what the migrator makes of a database's record of it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.migrate import (
    AppliedMigration,
    ChecksumMismatch,
    InvalidMigrations,
    Migration,
    compare,
    load_migrations,
)

FIRST = Migration(1, "baseline", "CREATE TABLE a (id int);\n")
SECOND = Migration(2, "add_b", "CREATE TABLE b (id int);\n")
THIRD = Migration(3, "add_c", "CREATE TABLE c (id int);\n")


def applied(*migrations: Migration) -> list[AppliedMigration]:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return [AppliedMigration(m.version, m.name, m.checksum, moment) for m in migrations]


def test_the_shipped_migrations_start_with_the_baseline_and_have_no_gap() -> None:
    migrations = load_migrations()
    assert migrations[0].label == "0001_baseline"
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))


@pytest.mark.parametrize(
    "names",
    [
        ["0001_baseline.sql", "0003_skipped_two.sql"],
        ["0001_baseline.sql", "0001_twice.sql"],
        ["0002_no_first.sql"],
        ["0001_baseline.sql", "2_short_number.sql"],
        ["0001_baseline.sql", "0002_Upper-Case.sql"],
        [],
    ],
)
def test_a_directory_with_a_gap_a_repeat_or_a_misnamed_file_is_refused(
    tmp_path: Path, names: list[str]
) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;\n")
    with pytest.raises(InvalidMigrations):
        load_migrations(tmp_path)


def test_other_files_beside_the_migrations_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "0001_baseline.sql").write_text("SELECT 1;\n")
    (tmp_path / "README.md").write_text("notes\n")
    assert [m.label for m in load_migrations(tmp_path)] == ["0001_baseline"]


def test_pending_are_the_migrations_after_the_last_applied() -> None:
    status = compare(applied(FIRST), [FIRST, SECOND, THIRD])
    assert (status.current, status.head, status.pending) == (1, 3, [SECOND, THIRD])
    assert compare([], [FIRST]).pending == [FIRST]
    assert compare(applied(FIRST, SECOND), [FIRST, SECOND]).pending == []


def test_a_changed_applied_migration_is_refused() -> None:
    edited = Migration(1, "baseline", FIRST.sql + "-- edited\n")
    with pytest.raises(ChecksumMismatch, match="0001_baseline"):
        compare(applied(FIRST), [edited, SECOND])


def test_line_endings_do_not_change_a_checksum() -> None:
    assert Migration(1, "baseline", FIRST.sql.replace("\n", "\r\n")).checksum == FIRST.checksum


def test_a_migration_numbered_below_one_already_applied_is_refused() -> None:
    with pytest.raises(InvalidMigrations, match="0002_add_b is pending but version 3"):
        compare(applied(FIRST, THIRD), [FIRST, SECOND, THIRD])


def test_migrations_of_a_newer_release_are_reported_not_refused() -> None:
    status = compare(applied(FIRST, SECOND), [FIRST])
    assert (status.current, status.pending) == (2, [])
    assert [row.label for row in status.unknown] == ["0002_add_b"]
