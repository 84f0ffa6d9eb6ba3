"""Time booking-guard adds to a booking over HTTP (issue 7 item 2, issue 3's "done when").

The service runs in this process (bench/http_service.py), the Cal.com simulator and the load
generator each in their own (bench/http_world.py). 50 producers book back to back for the
phase, every attempt a new call, attendee and slot on the plain event type, so every one is a
confirmation: intent, Cal.com, the guard chain, the appointment, the outcome. Per attempt:

- `added` = the producer's total time - the Cal.com time the service spent (the target);
- `added inside the handler` = the same from the service's outermost middleware, without
  the HTTP exchange on loopback and the wait to be read by the server.

The simulator's latency is 0 ms, then 200 ms (Cal.com's own median is about that). One producer
at 0 ms gives the added time of an attempt that never waits behind another (once the
service's projectors have applied the events of the loaded phases before it: until then they
run in this same process beside the attempt).

The floor: under the same 50 producers at 0 ms, the two lowest rungs of bench/http_ceilings.py,
an aiohttp app that answers 201 at once and one that only makes the Cal.com call. What they
"add" is what the machine adds to any aiohttp service here, before booking-guard does anything.
"""

from __future__ import annotations

import math
import time

from bench.harness import Context, Figure, Samples
from bench.http_ceilings import LADDER, TWO_STATEMENTS
from bench.http_service import Service, running_service
from bench.http_world import Load, LoadResult, load_generator, simulator_process
from service.api.keys import PROJECTORS, STORE

BUDGET_SECONDS = 150
TARGET_P99_MS = 10.0
PRODUCERS = 50
# (producers, simulator latency in ms); the target is on the 50-producer ones.
SHAPES = ((PRODUCERS, 0), (PRODUCERS, 200), (1, 0))
FLOORS = ("bare aiohttp", "+ one Cal.com call")
UNLOADED_RUNG = f"1 producer, Cal.com 0 ms, rung: {TWO_STATEMENTS}: added"
UNLOADED_RATIO = 1.2  # issue 16 item 2: within 1.2x of the rung at p50 and p99


def label(producers: int, latency_ms: int) -> str:
    who = "1 producer" if producers == 1 else f"{producers} concurrent"
    return f"{who}, Cal.com {latency_ms} ms"


def check(result: LoadResult, what: str) -> None:
    """Every attempt must have been a confirmation that said what it spent."""
    wrong = [a for a in result.answers if a.status != 201 or math.isnan(a.calcom)]
    if wrong:
        statuses = sorted({a.status for a in wrong})
        raise AssertionError(f"{what}: {len(wrong)} answers were not 201 confirmations: {statuses}")


def phase_seconds(ctx: Context) -> float:
    # Twice the harness's phase: at 200 ms a producer makes only ~5 attempts a second.
    return 2 * ctx.seconds


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    async with (
        simulator_process() as simulator,
        running_service(ctx.dsn, simulator.base_url) as service,
        load_generator() as load,
    ):
        for run_index in range(ctx.runs):
            for producers, latency_ms in SHAPES:
                name = label(producers, latency_ms)
                if producers == 1:
                    # Unloaded means unloaded: not while the service's own projector still
                    # works through the 50-producer phases' events in this same process.
                    await caught_up(service)
                await simulator.reset(latency_ms=latency_ms)
                result = await load.run(
                    Load(
                        service.url,
                        producers=producers,
                        seconds=phase_seconds(ctx),
                        warmup=0.5,
                        tag=f"o{run_index}p{producers}l{latency_ms}",
                    )
                )
                check(result, name)
                answers = result.answers
                added = samples.latencies(f"{name}: added", [a.total - a.calcom for a in answers])
                inside = samples.latencies(
                    f"{name}: added inside the handler", [a.handler - a.calcom for a in answers]
                )
                samples.latencies(f"{name}: total", [a.total for a in answers])
                samples.add(f"{name}: attempts/s", result.rate)
                ctx.progress(
                    f"http_overhead run {run_index + 1}: {name}: {len(answers)} attempts,"
                    f" {result.rate:,.0f}/s; added p50 {added[0]:.1f} ms, p99 {added[1]:.1f} ms;"
                    f" inside the handler p50 {inside[0]:.1f} ms, p99 {inside[1]:.1f} ms"
                )
            await simulator.reset(latency_ms=0)
            for rung in FLOORS:
                async with LADDER[rung](ctx.dsn, simulator.base_url) as url:
                    result = await load.run(
                        Load(
                            url,
                            producers=PRODUCERS,
                            seconds=phase_seconds(ctx),
                            warmup=0.5,
                            tag=f"o{run_index}floor{FLOORS.index(rung)}",
                        )
                    )
                # The bare rung makes no Cal.com call: all of its time is added time.
                added = samples.latencies(
                    floor_label(rung),
                    [a.total - (0.0 if math.isnan(a.calcom) else a.calcom) for a in result.answers],
                )
                samples.add(f"{floor_label(rung)}: attempts/s", result.rate)
                ctx.progress(
                    f"http_overhead run {run_index + 1}: {floor_label(rung)}: {result.rate:,.0f}/s;"
                    f" added p50 {added[0]:.1f} ms, p99 {added[1]:.1f} ms"
                )
            # Issue 16 item 2: unloaded, booking-guard's added time beside the rung that makes
            # the same two statements without anything else, in the same run.
            await simulator.reset(latency_ms=0)  # the floors' bookings would refuse its slots
            async with LADDER[TWO_STATEMENTS](ctx.dsn, simulator.base_url) as url:
                result = await load.run(
                    Load(
                        url,
                        producers=1,
                        seconds=phase_seconds(ctx),
                        warmup=0.5,
                        tag=f"o{run_index}two{time.monotonic_ns()}",
                    )
                )
            check(result, UNLOADED_RUNG)
            added = samples.latencies(UNLOADED_RUNG, [a.total - a.calcom for a in result.answers])
            ctx.progress(
                f"http_overhead run {run_index + 1}: {UNLOADED_RUNG}: added p50 {added[0]:.1f} ms,"
                f" p99 {added[1]:.1f} ms"
            )
    unloaded = label(1, 0)
    for q in ("p50", "p99"):
        samples.ratio(
            f"{unloaded}: added {q} ÷ the two-statement rung's, same run",
            f"{unloaded}: added {q}",
            f"{UNLOADED_RUNG} {q}",
        )
    figures: list[Figure] = []
    for producers, latency_ms in SHAPES:
        name = label(producers, latency_ms)
        target = TARGET_P99_MS if producers == PRODUCERS else None
        figures += samples.latency_figures(f"{name}: added", p99_target_ms=target)
        figures += samples.latency_figures(f"{name}: added inside the handler", p99_target_ms=None)
        figures += samples.latency_figures(f"{name}: total", p99_target_ms=None)
        figures.append(samples.figure(f"{name}: attempts/s", "attempts/s"))
    for rung in FLOORS:
        figures += samples.latency_figures(floor_label(rung), p99_target_ms=None)
        figures.append(samples.figure(f"{floor_label(rung)}: attempts/s", "attempts/s"))
    figures += samples.latency_figures(UNLOADED_RUNG, p99_target_ms=None)
    for q in ("p50", "p99"):
        figures.append(
            samples.figure(
                f"{unloaded}: added {q} ÷ the two-statement rung's, same run",
                "ratio",
                target=UNLOADED_RATIO,
                higher_is_better=False,
            )
        )
    return figures


async def caught_up(service: Service) -> None:
    """Wait until every projector of the service has applied the whole log."""
    head = await service.app[STORE].head()
    for runner in service.app[PROJECTORS]:
        await runner.wait_for(head, timeout=60)


def floor_label(rung: str) -> str:
    return f"{label(PRODUCERS, 0)}, floor: {rung}: added"
