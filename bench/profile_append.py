"""Where appends spend their time: `python -m bench.profile_append [--tasks 1 16] [--size 1]`.

Runs EventStore.append (`--size` events per transaction, a stream per task, the pool sized to
the tasks) under pyinstrument on a database of its own, and prints, per concurrency: events/s, how
busy this process and the whole machine were, and pyinstrument's call tree (CPU of this process
only; time the event loop sat waiting shows up under `select`). The text is kept in
bench/results/profile-append-<timestamp>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from datetime import UTC, datetime

from pyinstrument import Profiler

from bench.append import measure, store_append
from bench.harness import Context
from bench.report import RESULTS_DIR
from bench.server import bench_database, libpq_params, pgbench_path, server_dsn
from events.store import EventStore


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU jiffies of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [float(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def profile(ctx: Context, tasks: int, size: int) -> str:
    pool = await ctx.pool(tasks)
    try:
        make = functools.partial(store_append, EventStore(pool), size=size)
        await measure(ctx, make, f"profile-warm-{tasks}-{size}", tasks)
        busy0, total0 = machine_busy()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
        rate = await measure(ctx, make, f"profile-{tasks}-{size}", tasks)
        profiler.stop()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        busy1, total1 = machine_busy()
    finally:
        await pool.close()
    cores = os.cpu_count() or 1
    head = (
        f"## {size} event(s)/tx, {tasks} tasks: {rate:,.0f} events/s (under the profiler)\n"
        f"this process: {cpu / wall:.0%} of one core; the machine ({cores} cores): "
        f"{(busy1 - busy0) / (total1 - total0):.0%} busy\n"
    )
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    return head + tree


async def main(tasks: list[int], size: int, seconds: float) -> None:
    server = server_dsn()
    sections = []
    async with bench_database(server) as dsn:
        ctx = Context(dsn, libpq_params(dsn), pgbench_path(), 1, False, seconds)
        for n in tasks:
            ctx.progress(f"profiling EventStore.append, {size} event(s)/tx, {n} tasks, {seconds} s")
            sections.append(await profile(ctx, n, size))
    text = "\n".join(sections)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"profile-append-{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}.txt"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_append", description=__doc__)
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--size", type=int, default=1, help="events per append (default 1)")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.size, args.seconds))
