"""`python -m bench [--only NAME] [--runs N] [--quick]`: run the benchmarks, keep the table."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from bench import report
from bench.harness import Context, Figure, SharedDatabases
from bench.server import bench_database, libpq_params, pgbench_path, server_dsn, server_facts
from bench.suite import BENCHMARKS, EXTRAS
from events.database import redact

DEFAULT_BUDGET_SECONDS = 300.0

Benchmark = Callable[[Context], Awaitable[list[Figure]]]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    known = [*BENCHMARKS, *EXTRAS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=known,
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(known)}",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument(
        "--quick", action="store_true", help="short phases and small data: a smoke test"
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    return args


async def run_one(name: str, module_name: str, ctx: Context, server: str) -> list[Figure]:
    """One benchmark on a database of its own, cancelled if it overruns its budget."""
    module = importlib.import_module(module_name)
    benchmark: Benchmark = module.run
    budget = float(getattr(module, "BUDGET_SECONDS", DEFAULT_BUDGET_SECONDS))
    async with bench_database(server) as dsn:
        own = dataclasses.replace(ctx, dsn=dsn, libpq=libpq_params(dsn))
        started = time.perf_counter()
        async with asyncio.timeout(budget):
            figures = await benchmark(own)
        ctx.progress(f"{name}: done in {time.perf_counter() - started:.0f} s")
        return figures


async def main(args: argparse.Namespace, command: str) -> int:
    started = datetime.now(UTC)
    server = server_dsn()
    ctx = Context(
        dsn=server,
        libpq=libpq_params(server),
        pgbench=pgbench_path(),
        runs=args.runs,
        quick=args.quick,
        seconds=0.5 if args.quick else 1.5,
        shared=SharedDatabases(server),
    )
    ctx.progress(f"server {redact(server)}; {args.runs} runs of {ctx.seconds} s phases")
    facts = report.machine_facts() | await server_facts(server) | {"runs": str(args.runs)}
    # Other work on the machine moves the figures; the load averages say whether there was any.
    load_before = os.getloadavg()[0]
    selected = args.only or list(BENCHMARKS)
    modules = BENCHMARKS | EXTRAS
    results: dict[str, list[Figure]] = {}
    failures: dict[str, str] = {}
    durations: dict[str, str] = {}
    run_started = time.perf_counter()
    try:
        for name in selected:
            ctx.progress(f"{name}: starting")
            began, load_at_start = time.perf_counter(), os.getloadavg()[0]
            try:
                results[name] = await run_one(name, modules[name], ctx, server)
            except TimeoutError:
                failures[name] = "overran its time budget"
                ctx.progress(f"{name}: overran its time budget")
            # One broken benchmark must not cost the figures of the others: report it, go on.
            except Exception as e:  # noqa: BLE001
                failures[name] = f"{type(e).__name__}: {e}"
                ctx.progress(f"{name}: failed: {type(e).__name__}: {e}")
            seconds, load_at_end = time.perf_counter() - began, os.getloadavg()[0]
            durations[name] = f"{seconds:.0f} s, load {load_at_start:.1f}→{load_at_end:.1f}"
    finally:
        await ctx.shared.aclose()
    each = "; ".join(f"{name} {what}" for name, what in durations.items())
    facts["wall time"] = f"{time.perf_counter() - run_started:.0f} s ({each})"
    facts["load average before/after"] = f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    text = report.render(started, facts, command, results, failures)
    path = report.write(started, text)
    print(text)
    ctx.progress(f"wrote {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    command = shlex.join(["python", "-m", "bench", *sys.argv[1:]])
    sys.exit(asyncio.run(main(arguments, command)))
