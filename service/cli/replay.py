"""`booking-guard replay` and `booking-guard projections`: rebuild read models, see their lag.

Replay rebuilds the projections at once when the pool has the connections (they are
independent). On a terminal it shows a rich progress bar per projection that names each phase as it
begins (counting, rebuilding with events done, events/s and ETA, building indexes, swapping in),
with a spinner and the time elapsed, so no phase sits silent. When its output goes to a file or
a log it prints a plain line every few seconds instead (`ProgressPrinter`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as Bars

from events.errors import DatabaseUnavailable
from projections import appointments, catalog, checkpoints
from projections.rebuild import Phase, Progress, RebuildError, RebuildResult, rebuild_all
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


class TerminalProgress:
    """Rich progress bars on a terminal: one per projection, its phase in the description."""

    def __init__(self, console: Console) -> None:
        self._bars = Bars(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TerminalProgress:
        self._bars.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._bars.stop()

    def start(self, projection: str) -> None:
        """A new bar for `projection`, empty until the log is counted."""
        self._tasks[projection] = self._bars.add_task(
            f"{projection}: starting", total=None, rate="", eta=""
        )

    def phase(self, projection: str, phase: Phase) -> None:
        """Name the phase that begins; drawn at once, not at the next refresh tick."""
        self._bars.update(self._task(projection), description=f"{projection}: {phase}")
        self._bars.refresh()

    def __call__(self, progress: Progress) -> None:
        rate = progress.done / progress.elapsed if progress.elapsed > 0 else 0.0
        left = max(progress.total - progress.done, 0)
        eta = f"ETA {left / rate:.0f}s" if rate > 0 and left else ""
        self._bars.update(
            self._task(progress.projection),
            total=progress.total,
            completed=progress.done,
            rate=f"{rate:,.0f} events/s",
            eta=eta,
        )

    def finish(self, result: RebuildResult) -> None:
        """The bar says the table is in place; a line above the bars keeps the figures."""
        self._bars.update(
            self._task(result.projection),
            description=f"{result.projection}: swapped in",
            total=result.events,
            completed=result.events,
            eta="",
        )
        self._bars.console.print(summary(result))

    def _task(self, projection: str) -> TaskID:
        task = self._tasks.get(projection)
        assert task is not None, f"start({projection!r}) first"
        return task


def summary(result: RebuildResult) -> str:
    """`appointments: rebuilt from 1,000 events in 0.2s (5,000 events/s), swapped in`."""
    return (
        f"{result.projection}: rebuilt from {result.events:,} events in"
        f" {result.seconds:.1f}s ({result.rate:,.0f} events/s), swapped in"
    )


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
    settings: Settings,
    only: list[str],
    batch_size: int,
    *,
    out: TextIO | None = None,
    terminal: bool | None = None,
) -> int:
    """Rebuild the chosen projections (all when `only` is empty), at once when the pool
    allows (projections/rebuild.py, `rebuild_all`), each with its own progress."""
    out = out or sys.stdout
    chosen = [p for name, p in catalog.all_projections().items() if not only or name in only]
    async with command_database(settings) as (pool, _):
        if not (out.isatty() if terminal is None else terminal):
            printers = {projection.name: ProgressPrinter(out) for projection in chosen}
            await rebuild_all(
                pool,
                chosen,
                batch_size=batch_size,
                on_progress=lambda progress: printers[progress.projection](progress),
                on_result=lambda result: print(summary(result), file=out),
            )
            return 0
        with TerminalProgress(Console(file=out, force_terminal=True, highlight=False)) as bars:
            for projection in chosen:
                bars.start(projection.name)
            await rebuild_all(
                pool,
                chosen,
                batch_size=batch_size,
                on_progress=bars,
                on_phase=bars.phase,
                on_result=bars.finish,
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
