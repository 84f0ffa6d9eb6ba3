"""`booking-guard db`: the embedded PostgreSQL of BOOKING_GUARD_DATA_DIR."""

from __future__ import annotations

import argparse
from typing import Any

from events.database import stop_embedded
from service.settings import Settings


def add_db_command(commands: Any) -> None:
    """`db stop`, on the console script's subcommands."""
    db = commands.add_parser("db", help="the embedded PostgreSQL (when DATABASE_URL is unset)")
    db.add_argument("action", choices=["stop"], help="stop: shut the embedded server down")


def run_db_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `db` action."""
    if settings.database_url:
        print("booking-guard: DATABASE_URL is set; there is no embedded server to stop")
        return 0
    stopped = stop_embedded(settings.data_dir)
    print(f"{'stopped' if stopped else 'no server running in'} {settings.data_dir}")
    return 0
