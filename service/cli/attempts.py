"""`booking-guard attempts`: parked attempts, handed back to recovery by an operator."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from events.errors import DatabaseUnavailable
from service.app import command_database
from service.booking.parking import NotParked, resume
from service.settings import Settings


def add_attempts_command(commands: Any) -> None:
    """`attempts resume <attempt_id>`, on the console script's subcommands."""
    attempts = commands.add_parser("attempts", help="attempts recovery parked")
    actions = attempts.add_subparsers(dest="action", required=True)
    resume_parser = actions.add_parser(
        "resume", help="hand a parked attempt back to the recovery loop (fix its cause first)"
    )
    resume_parser.add_argument("attempt_id", help="the attempt id AttemptParked names")


def run_attempts_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one `attempts` action."""
    try:
        attempt_id = uuid.UUID(args.attempt_id)
    except ValueError:
        print(f"booking-guard: {args.attempt_id!r} is not an attempt id (a UUID)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_resume(settings, attempt_id))
    except DatabaseUnavailable as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1


async def _resume(settings: Settings, attempt_id: uuid.UUID) -> int:
    async with command_database(settings) as (pool, store):
        try:
            resumed = await resume(pool, store, attempt_id, now=datetime.now(UTC))
        except NotParked as e:
            print(f"booking-guard: {e}", file=sys.stderr)
            return 1
    print(
        f"resumed attempt {resumed.attempt_id} of call {resumed.call_id}: the recovery loop "
        "takes it on its next pass"
    )
    return 0
