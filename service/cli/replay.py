"""`booking-guard replay` and `booking-guard projections`: rebuild read models, see their lag.

Replay shows its progress (events done, events/s, ETA) on one rewritten line on a terminal, and
as a plain line every few seconds when its output goes to a file or a log.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TextIO

from events.errors import DatabaseUnavailable
from projections import appointments, catalog, checkpoints
from projections.rebuild import Progress, RebuildError, rebuild
from projections.runner import ProjectionRunner
from service.app import command_database
from service.settings import Settings

PLAIN_EVERY_SECONDS = 5.0
# The row count `projections status` shows for each projection written inline.
INLINE_ROWS = {appointments.NAME: appointments.count}


class ProgressPrinter:
    """Prints rebuild progress: one line rewritten with \\r on a TTY, periodic lines otherwise."""

    def __init__(self, out: TextIO, *, tty: bool | None = None, every: float = PLAIN_EVERY_SECONDS):
        self._out = out
        self._tty = out.isatty() if tty is None else tty
        self._every = every
        self._last = -every
        self._finished: tuple[str, int] | None = None

    def __call__(self, progress: Progress) -> None:
        finished = progress.done >= progress.total
        if finished and self._finished == (progress.projection, progress.done):
            return  # the swap applied nothing more: the last line stands
        if not self._tty and not finished and progress.elapsed - self._last < self._every:
            return
        if finished:
            self._finished = (progress.projection, progress.done)
        self._last = progress.elapsed
        line = describe(progress)
        if self._tty:
            self._out.write("\r" + line.ljust(78) + ("\n" if finished else ""))
        else:
            self._out.write(line + "\n")
        self._out.flush()


def describe(progress: Progress) -> str:
    """`appointments: 500,000/1,000,000 events  61,234 events/s  ETA 8s`."""
    rate = progress.done / progress.elapsed if progress.elapsed > 0 else 0.0
    left = max(progress.total - progress.done, 0)
    eta = f"ETA {left / rate:.0f}s" if rate > 0 and left else "done"
    return (
        f"{progress.projection}: {progress.done:,}/{progress.total:,} events"
        f"  {rate:,.0f} events/s  {eta}"
    )


def add_replay_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `replay` and `projections`."""
    names = list(catalog.all_projections())
    replay = commands.add_parser("replay", help="rebuild projections from the log and swap them in")
    replay.add_argument(
        "--projection", action="append", choices=names, help="only this one (repeatable)"
    )
    replay.add_argument("--batch-size", type=int, default=10_000, help="events per batch")
    status = commands.add_parser("projections", help="projection state and lag; resume one")
    status.add_argument("action", nargs="?", choices=["status", "resume"], default="status")
    status.add_argument("name", nargs="?", choices=names)


def run_replay_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `replay` or `projections`."""
    try:
        if args.command == "replay":
            return asyncio.run(replay_command(settings, args.projection or [], args.batch_size))
        return asyncio.run(projections_command(settings, args.action, args.name))
    except (DatabaseUnavailable, RebuildError) as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1


async def replay_command(
    settings: Settings, only: list[str], batch_size: int, *, out: TextIO | None = None
) -> int:
    """Rebuild the chosen projections (all when `only` is empty), one after the other."""
    out = out or sys.stdout
    chosen = [p for name, p in catalog.all_projections().items() if not only or name in only]
    async with command_database(settings) as (pool, _):
        for projection in chosen:
            started = time.monotonic()
            result = await rebuild(
                pool, projection, batch_size=batch_size, on_progress=ProgressPrinter(out)
            )
            print(
                f"{result.projection}: rebuilt from {result.events:,} events in"
                f" {time.monotonic() - started:.1f}s ({result.rate:,.0f} events/s), swapped in",
                file=out,
            )
    return 0


async def projections_command(
    settings: Settings, action: str, name: str | None, *, out: TextIO | None = None
) -> int:
    """`projections status`: every projection's state; `projections resume NAME`."""
    out = out or sys.stdout
    async with command_database(settings) as (pool, store):
        if action == "resume":
            if name is None:
                print("booking-guard: projections resume needs a NAME", file=sys.stderr)
                return 2
            resumed = await checkpoints.resume(pool, name)
            print(f"{name}: {'resumed' if resumed else 'was not failed'}", file=out)
            return 0
        for projection in catalog.all_projections().values():
            if projection.inline:
                # Written in the transaction of each booking: no checkpoint, never behind.
                rows = await INLINE_ROWS[projection.name](pool)
                print(
                    f"{projection.name}: inline (written with each booking), {rows:,} rows",
                    file=out,
                )
                continue
            lag = await ProjectionRunner(pool, store, projection).lag()
            error = f"; error: {lag.error}" if lag.error else ""
            print(
                f"{lag.name}: {lag.state} at {lag.checkpoint}, {lag.events_behind} events"
                f" behind ({lag.seconds_behind:.1f}s){error}",
                file=out,
            )
    return 0
