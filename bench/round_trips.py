"""Round trips per booking (issue 16 item 2): the statements the service's pool sends per attempt.

The http_throughput set-up (the service here, the simulator and the load generator in their own
processes), 16 producers at Cal.com 0 ms, every attempt a 201 confirmation. After an untimed
warm-up, asyncpg query loggers on every pool connection see each round trip of one phase
(BEGIN, COMMIT and a reset query would be counted too); the count is divided by every attempt
the phase made, its own warm-up included, since their statements were seen as well.

Each statement is put in one of four kinds by what it touches:

- the booking path: the claim and the outcome (target: 2 per attempt);
- the shared Cal.com rate limiter's lease (one per lease of several requests);
- the append's wake-up (`pg_notify`, coalesced: sent by a background task, not the request);
- the projector's horizon read (a background task, not the request path).

`python -m bench.profile_http` prints the same count by statement text with a profile.
"""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

from bench.harness import Context, Figure, Samples
from bench.http_service import Service, running_service
from bench.http_world import Load, LoadGenerator, load_generator, simulator_process
from bench.profile_http import pool_connections

BUDGET_SECONDS = 90
PRODUCERS = 16
TARGET = 2.0  # statements per attempt on the booking path

BOOKING = "booking path (claim + outcome)"
LEASE = "rate limiter's lease"
WAKE_UP = "append's wake-up (background)"
PROJECTOR = "projector's horizon read (background)"
OTHER = "anything else"


def kind(query: str) -> str:
    """Which of the kinds above a statement is, by what it names."""
    if "calcom_rate_limit" in query:
        return LEASE
    if "pg_notify" in query:
        return WAKE_UP
    if query.lstrip().startswith("SELECT transaction_id, position FROM events"):
        return PROJECTOR
    if "idempotency_keys" in query or "bg_append_events" in query:
        return BOOKING
    return OTHER


async def counted_phase(
    service: Service, load: LoadGenerator, tag: str, seconds: float
) -> tuple[collections.Counter[str], set[str], int]:
    """One phase with every pool connection's statements counted by kind; the attempts made."""
    counts: collections.Counter[str] = collections.Counter()
    unknown: set[str] = set()

    def logged(record: Any) -> None:
        name = kind(record.query)
        counts[name] += 1
        if name == OTHER:
            unknown.add(" ".join(record.query.split())[:80])

    connections = pool_connections(service)
    for conn in connections:
        conn.add_query_logger(logged)
    try:
        result = await load.run(Load(service.url, PRODUCERS, seconds, 0.0, tag))
    finally:
        for conn in connections:
            conn.remove_query_logger(logged)
    await asyncio.sleep(0)  # asyncpg calls the loggers with call_soon: let them run
    refused = [a.status for a in result.answers if a.status != 201]
    if refused:
        raise AssertionError(f"{len(refused)} answers were not 201: {set(refused)}")
    return counts, unknown, len(result.answers) + result.warmup_attempts


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    seconds = 1.0 if ctx.quick else 3.0
    async with (
        simulator_process() as simulator,
        running_service(ctx.dsn, simulator.base_url) as service,
        load_generator() as load,
    ):
        await simulator.reset(latency_ms=0)
        # Warm-up: every pool connection opened, the limiter's first lease taken.
        await load.run(Load(service.url, PRODUCERS, 1.0, warmup=0.0, tag=f"w{time.time_ns()}"))
        await simulator.reset(latency_ms=0)
        for run_index in range(ctx.runs):
            counts, unknown, attempts = await counted_phase(
                service, load, f"r{run_index}x{time.time_ns()}", seconds
            )
            for name in (BOOKING, LEASE, WAKE_UP, PROJECTOR, OTHER):
                samples.add(name, counts[name] / attempts)
            samples.add("all", sum(counts.values()) / attempts)
            ctx.progress(
                f"round_trips run {run_index + 1}: {attempts} attempts, booking path"
                f" {counts[BOOKING] / attempts:.2f}, lease {counts[LEASE] / attempts:.2f},"
                f" other statements: {sorted(unknown) or 'none'}"
            )
            # The next phase's slots repeat this one's: the simulator forgets its bookings.
            await simulator.reset(latency_ms=0)
    prefix = f"statements per attempt, {PRODUCERS} producers"
    figures = [
        Figure(f"{prefix}: {BOOKING}", "statements", tuple(samples.values[BOOKING]), TARGET, False)
    ]
    for name in (LEASE, WAKE_UP, PROJECTOR, OTHER, "all"):
        figures.append(Figure(f"{prefix}: {name}", "statements", tuple(samples.values[name])))
    return figures
