"""Booking attempts per second over HTTP (issue 7, item 3): 64 producers, Cal.com at 0 ms.

The same three processes as http_overhead (the service here, the simulator and the load
generator each in their own): 64 producers book back to back, every attempt a new call and slot
on the plain event type, so every answer is a 201 confirmation. The figure counts the attempts
answered in the timed phase over its length (until the last attempt in flight was answered).

Beside it, under the same load on the same machine, the ladder of bench/http_ceilings.py:
bare aiohttp, then one Cal.com call, then booking-guard's writes in a transaction per phase
(11 round trips), then in a statement per phase (3, as booking-guard does them now); none with
models, logging or metrics. For each,
the CPU an attempt costs in each process (bench/cpu.py): on 2 cores the sum bounds the rate.
"""

from __future__ import annotations

import time

from bench import cpu
from bench.harness import Context, Figure, Samples
from bench.http_ceilings import LADDER, TWO_STATEMENTS
from bench.http_overhead import check, phase_seconds
from bench.http_service import running_service
from bench.http_world import Load, LoadGenerator, Simulator, load_generator, simulator_process

BUDGET_SECONDS = 150
TARGET = 1_000.0  # attempts/s
NO_TAX_RATE = 0.95  # of the two-statement rung's attempts/s (issue 16 item 3)
NO_TAX_CPU = 1.1  # times the rung's service CPU per attempt, at most
PRODUCERS = 64
NAME = f"{PRODUCERS} producers, Cal.com 0 ms"
OURS = "booking-guard"
SERVICE, POSTGRES, MACHINE = cpu.SERVICE, cpu.POSTGRES, cpu.MACHINE


async def phase(
    ctx: Context, simulator: Simulator, load: LoadGenerator, url: str, tag: str
) -> tuple[float, list[float], dict[str, float]]:
    """One timed phase against `url`: attempts/s, each total, CPU ms per attempt by process."""
    await simulator.reset(latency_ms=0)
    children = {"Cal.com simulator": simulator.pid, "load generator": load.pid}
    before = cpu.snapshot(children)
    result = await load.run(
        Load(url, producers=PRODUCERS, seconds=phase_seconds(ctx), warmup=0.5, tag=tag)
    )
    spent = cpu.per_unit(
        before, cpu.snapshot(children), len(result.answers) + result.warmup_attempts
    )
    check(result, tag)
    return result.rate, [a.total for a in result.answers], spent


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    cpu_names: list[str] = []
    sides = [OURS, *LADDER]
    async with simulator_process() as simulator, load_generator() as load:
        for run_index in range(ctx.runs):
            for side in sides if run_index % 2 == 0 else sides[::-1]:
                tag = f"t{run_index}x{time.monotonic_ns()}"
                if side == OURS:
                    async with running_service(ctx.dsn, simulator.base_url) as service:
                        rate, totals, spent = await phase(ctx, simulator, load, service.url, tag)
                    samples.latencies(f"{NAME}: {side}: total", totals)
                    cpu_names = list(spent)
                else:
                    async with LADDER[side](ctx.dsn, simulator.base_url) as url:
                        rate, totals, spent = await phase(ctx, simulator, load, url, tag)
                    spent = {k: spent[k] for k in (SERVICE, POSTGRES, MACHINE)}
                samples.add(label(side), rate)
                for name, ms in spent.items():
                    samples.add(f"{label(side)}: CPU per attempt: {name}", ms)
                where = ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items())
                ctx.progress(
                    f"http_throughput run {run_index + 1}: {side}: {rate:,.0f}/s;"
                    f" CPU ms per attempt: {where}"
                )
    figures = [samples.figure(label(OURS), "attempts/s", target=TARGET)]
    figures += samples.latency_figures(f"{NAME}: {OURS}: total", p99_target_ms=None)
    figures += [
        samples.figure(f"{label(OURS)}: CPU per attempt: {name}", "ms") for name in cpu_names
    ]
    for side in LADDER:
        figures.append(samples.figure(label(side), "attempts/s"))
        figures += [
            samples.figure(f"{label(side)}: CPU per attempt: {name}", "ms")
            for name in (SERVICE, POSTGRES, MACHINE)
        ]
    # Issue 16 item 3, no Python tax: against the rung making the same two statements without
    # models, logging or metrics, paired run by run.
    rate_ratio = f"{NAME}: attempts/s, booking-guard ÷ the two-statement rung, same run"
    cpu_ratio = f"{NAME}: service CPU per attempt, booking-guard ÷ the two-statement rung, same run"
    samples.ratio(rate_ratio, label(OURS), label(TWO_STATEMENTS))
    samples.ratio(
        cpu_ratio,
        f"{label(OURS)}: CPU per attempt: {SERVICE}",
        f"{label(TWO_STATEMENTS)}: CPU per attempt: {SERVICE}",
    )
    figures.append(samples.figure(rate_ratio, "ratio", target=NO_TAX_RATE))
    figures.append(samples.figure(cpu_ratio, "ratio", target=NO_TAX_CPU, higher_is_better=False))
    return figures


def label(side: str) -> str:
    return f"{NAME}: {side}" if side == OURS else f"{NAME}, ceiling: {side}"
