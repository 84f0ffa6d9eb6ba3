"""The benchmarks `python -m bench` runs, in order. To add one, write a module in bench/ with

    BUDGET_SECONDS = 120                                  # the harness cancels it past this
    async def run(ctx: Context) -> list[Figure]: ...      # median/min/max of ctx.runs runs

and name it here. EXTRAS run only when asked for with `--only NAME`.
"""

from __future__ import annotations

BENCHMARKS: dict[str, str] = {
    "guards": "bench.guards",
    "round_trips": "bench.round_trips",
    "http_overhead": "bench.http_overhead",
    "http_throughput": "bench.http_throughput",
    "http_workers": "bench.http_workers",
    "replay": "bench.replay",
    "audit": "bench.audit",
    "append": "bench.append",
    "peer": "bench.peer",
    # Last: generating its 10,000,000-event log takes most of its time (bench/scale.py).
    "scale": "bench.scale",
}

EXTRAS: dict[str, str] = {
    # One statement through the pool, with and without asyncpg's reset query: the unit cost.
    "roundtrip": "bench.roundtrip",
}
