"""`booking-guard db`: the schema's migrations; the embedded PostgreSQL (BOOKING_GUARD_DATA_DIR).

`db migrate` is the one command that changes the schema (besides `serve` with
BOOKING_GUARD_AUTO_MIGRATE=true); `db status` only reads.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from events.database import stop_embedded
from events.errors import DatabaseUnavailable
from events.migrate import Progress, SchemaStatus, migrate, status
from service.app import command_pool
from service.settings import Settings


def add_db_command(commands: Any) -> None:
    """`db migrate`, `db status` and `db stop`, on the console script's subcommands."""
    db = commands.add_parser("db", help="the schema's migrations; the embedded PostgreSQL")
    db.add_argument(
        "action",
        choices=["migrate", "status", "stop"],
        help="migrate: apply pending migrations; status: the schema's version and what is"
        " pending (exit 1 when something is); stop: shut the embedded server down",
    )


def run_db_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `db` action."""
    if args.action == "stop":
        return _stop(settings)
    try:
        if args.action == "migrate":
            return asyncio.run(migrate_command(settings))
        return asyncio.run(status_command(settings))
    except DatabaseUnavailable as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1


async def migrate_command(settings: Settings, *, out: TextIO | None = None) -> int:
    """Apply the pending migrations, printing each one as it is applied."""
    out = out or sys.stdout

    def show(progress: Progress) -> None:
        print(
            f"[{progress.number}/{progress.total}] applied {progress.migration.label}"
            f" in {progress.seconds:.2f}s",
            file=out,
            flush=True,
        )

    async with command_pool(settings, create=True) as pool:
        applied = await migrate(pool, on_applied=show)
        async with pool.acquire() as conn:
            after = await status(conn)
    if applied:
        print(f"now at version {after.current}", file=out)
    else:
        print(f"already at version {after.current}", file=out)
    return 0


async def status_command(settings: Settings, *, out: TextIO | None = None) -> int:
    """Print the schema's version and the pending migrations; 1 when any is pending."""
    out = out or sys.stdout
    async with command_pool(settings) as pool, pool.acquire() as conn:
        found = await status(conn)
    print(describe(found), file=out)
    return 1 if found.pending else 0


def describe(found: SchemaStatus) -> str:
    """`db status`'s text: the version, each applied and pending migration."""
    state = "up to date" if not found.pending else f"{len(found.pending)} pending"
    lines = [f"schema version {found.current} of {found.head}: {state}"]
    lines += [
        f"  applied  {row.label}  {row.applied_at.isoformat(timespec='seconds')}"
        for row in found.applied
    ]
    lines += [f"  pending  {migration.label}" for migration in found.pending]
    if found.unknown:
        newer = ", ".join(row.label for row in found.unknown)
        lines.append(f"  applied by a newer release, unknown here: {newer}")
    if found.pending:
        lines.append("run `booking-guard db migrate` to apply them")
    return "\n".join(lines)


def _stop(settings: Settings) -> int:
    if settings.database_url:
        print("booking-guard: DATABASE_URL is set; there is no embedded server to stop")
        return 0
    stopped = stop_embedded(settings.data_dir)
    print(f"{'stopped' if stopped else 'no server running in'} {settings.data_dir}")
    return 0
