"""What one statement through the pool costs on this machine: `--only roundtrip` (an extra).

`pool.fetchval("SELECT 1")` from 1 and 64 tasks on a pool of 10 built by create_pool, with
asyncpg's reset query on release (two round trips per call) and without it (one: the service's
request-path pool since 3a96440). Per call: the rate, and the CPU it cost this process and
PostgreSQL (bench/cpu.py): the unit in which the HTTP benchmarks' round trips are paid.
"""

from __future__ import annotations

import asyncio

import asyncpg

from bench import cpu
from bench.harness import Context, Figure, Samples

BUDGET_SECONDS = 120
POOL_SIZE = 10
TASKS = (1, 64)


async def calls_per_second(ctx: Context, pool: asyncpg.Pool, tasks: int) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    done = 0

    async def drive(deadline: float) -> None:
        nonlocal done
        while loop.time() < deadline:
            await pool.fetchval("SELECT 1")
            done += 1

    await asyncio.gather(*(drive(loop.time() + 0.3) for _ in range(tasks)))  # warm-up
    done = 0
    started = loop.time()
    await asyncio.gather(*(drive(started + ctx.seconds) for _ in range(tasks)))
    return done / (loop.time() - started), done


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    labels: list[str] = []
    for run_index in range(ctx.runs):
        for reset in (True, False) if run_index % 2 == 0 else (False, True):
            pool = await ctx.pool(POOL_SIZE, reset_sessions=reset)
            try:
                for tasks in TASKS:
                    before = cpu.snapshot({})
                    rate, calls = await calls_per_second(ctx, pool, tasks)
                    spent = cpu.per_unit(before, cpu.snapshot({}), calls)
                    how = "pool with reset query" if reset else "pool without reset query"
                    label = f"SELECT 1, {tasks} {'task' if tasks == 1 else 'tasks'}, {how}"
                    samples.add(f"{label}: calls", rate)
                    samples.add(f"{label}: CPU per call, this process", spent[cpu.SERVICE] * 1000)
                    samples.add(f"{label}: CPU per call, PostgreSQL", spent[cpu.POSTGRES] * 1000)
                    if label not in labels:
                        labels.append(label)
                    ctx.progress(f"roundtrip run {run_index + 1}: {label}: {rate:,.0f}/s")
            finally:
                await pool.close()
    figures: list[Figure] = []
    for label in sorted(labels):
        figures += [
            samples.figure(f"{label}: calls", "calls/s"),
            samples.figure(f"{label}: CPU per call, this process", "µs"),
            samples.figure(f"{label}: CPU per call, PostgreSQL", "µs"),
        ]
    return figures
