"""Where a rebuild spends its time: `python -m bench.profile_replay [--events N]`.

Loads bench/log_dataset.py's log into a database of its own, then rebuilds the appointments
projection twice: once plain, to report the CPU this process and PostgreSQL used (bench/cpu.py),
and once under pyinstrument with async mode on, so that time spent awaiting PostgreSQL is
charged to the step that awaited it (reading a batch, the COPY, the index builds, the swap).
The text is kept in bench/results/profile-replay-<timestamp>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime

from pyinstrument import Profiler

from bench import cpu, log_dataset
from bench.report import RESULTS_DIR
from bench.server import bench_database, server_dsn
from events.database import create_pool
from projections import appointments_replay
from projections.rebuild import rebuild


async def main(events: int) -> None:
    async with bench_database(server_dsn()) as dsn:
        await log_dataset.load(dsn, events, lambda line: print(line, file=sys.stderr))
        pool = await create_pool(dsn, min_size=3, max_size=3)
        try:
            await rebuild(pool, appointments_replay.PROJECTION)  # warm the cache, untimed
            before = cpu.snapshot({})
            result = await rebuild(pool, appointments_replay.PROJECTION)
            spent = cpu.per_unit(before, cpu.snapshot({}), 1)
            profiler = Profiler(interval=0.001, async_mode="enabled")
            started = time.perf_counter()
            with profiler:
                await rebuild(pool, appointments_replay.PROJECTION)
            profiled = time.perf_counter() - started
        finally:
            await pool.close()
    where = ", ".join(f"{name} {ms / 1000:.1f} s" for name, ms in spent.items())
    text = (
        f"## rebuild appointments from {events:,} events: {result.seconds:.1f} s,"
        f" {result.events:,} of its own events applied ({result.rate:,.0f}/s)\n"
        f"CPU during the plain rebuild: {where}\n\n"
        f"under pyinstrument (async mode): {profiled:.1f} s\n\n"
        + profiler.output_text(unicode=False, color=False, show_all=False)
    )
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"profile-replay-{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}.txt"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_replay", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    asyncio.run(main(args.events))
