"""Where a booking attempt over HTTP spends its time: `python -m bench.profile_http`.

Starts the http_throughput set-up (the service in this process; the simulator and the load
generator in their own), warms it up, then runs two phases of `--producers` producers:

1. counting: every statement the service's pool connections send (asyncpg query loggers,
   which see each round trip: BEGIN, COMMIT and the pool's reset query included), per attempt;
2. profiling: pyinstrument over this process (or, with `--py-spy PATH`, py-spy sampling it
   from outside, which costs the service almost nothing), with the CPU each process used.

The text is kept in bench/results/profile-http-<timestamp>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from pyinstrument import Profiler
from pyinstrument.frame import Frame

from bench import cpu
from bench.http_service import Service, running_service
from bench.http_world import Load, LoadGenerator, Simulator, load_generator, simulator_process
from bench.profile_append import machine_busy
from bench.report import RESULTS_DIR
from bench.server import bench_database, server_dsn
from service.api.keys import POOL


def pool_connections(service: Service) -> list[asyncpg.Connection]:
    """The pool's open connections (asyncpg keeps them in its holders; read-only use)."""
    holders: list[Any] = getattr(service.app[POOL], "_holders", [])
    return [h._con for h in holders if getattr(h, "_con", None) is not None]


def component(file_path: str | None) -> str:
    """Which library (or layer of ours) a frame's file belongs to."""
    if not file_path:
        return "(native, no Python frame)"
    if "site-packages/" in file_path:
        return file_path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for ours in ("service", "events", "projections", "bench"):
        if f"/{ours}/" in file_path:
            return f"ours: {ours}/"
    if file_path.endswith("selectors.py"):
        return "selectors: waiting in epoll (idle)"
    if "/asyncio/" in file_path:
        return "asyncio (event loop)"
    return f"stdlib {file_path.rsplit('/', 1)[-1].removesuffix('.py')}"


def by_component(root: Frame, *, top: int = 25) -> str:
    """Self time summed by library, then the functions with the most: where the time goes."""
    spent: dict[str, float] = collections.defaultdict(float)
    functions: dict[str, float] = collections.defaultdict(float)
    stack = [root]
    while stack:
        frame = stack.pop()
        # A frame's self time includes its synthetic children ([self], [await]).
        own = max(frame.total_self_time, 0.0)
        spent[component(frame.file_path)] += own
        functions[f"{frame.function} ({frame.file_path_short}:{frame.line_no})"] += own
        stack.extend(child for child in frame.children if not child.is_synthetic)
    total = sum(spent.values())
    lines = ["| share | seconds | component (self time) |", "| ---: | ---: | --- |"]
    lines += [f"| {s / total:.0%} | {s:.2f} | {name} |" for name, s in _largest(spent)]
    lines += ["", "| share | seconds | function (self time) |", "| ---: | ---: | --- |"]
    lines += [f"| {s / total:.1%} | {s:.2f} | {f} |" for f, s in _largest(functions)[:top]]
    return "\n".join(lines) + "\n\n"


def _largest(values: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(values.items(), key=lambda item: item[1], reverse=True)


def statement(query: str) -> str:
    """A short name for a statement: its first line, whitespace squeezed."""
    return " ".join(query.split())[:90]


async def phase(
    simulator: Simulator, load: LoadGenerator, service: Service, producers: int, seconds: float
) -> tuple[int, float]:
    await simulator.reset(latency_ms=0)
    tag = f"profile{time.monotonic_ns()}"
    result = await load.run(Load(service.url, producers, seconds, warmup=0.3, tag=tag))
    bad = [a.status for a in result.answers if a.status != 201]
    if bad:
        raise AssertionError(f"{len(bad)} answers were not 201: {sorted(set(bad))}")
    return len(result.answers), result.rate


async def count_round_trips(
    simulator: Simulator, load: LoadGenerator, service: Service, producers: int, seconds: float
) -> str:
    counts: collections.Counter[str] = collections.Counter()

    def logged(record: Any) -> None:
        counts[statement(record.query)] += 1

    connections = pool_connections(service)
    for conn in connections:
        conn.add_query_logger(logged)
    try:
        attempts, rate = await phase(simulator, load, service, producers, seconds)
    finally:
        for conn in connections:
            conn.remove_query_logger(logged)
    await asyncio.sleep(0.1)  # the loggers are called soon after, not at once
    # The warm-up's statements are counted too: divide by every attempt the phase made.
    total = attempts + round(rate * 0.3)
    lines = [
        f"## Round trips per attempt ({len(connections)} pool connections watched,"
        f" ~{total} attempts incl. warm-up, {rate:,.0f} attempts/s with query loggers on)",
        "",
        "| per attempt | statement |",
        "| ---: | --- |",
    ]
    lines += [f"| {n / total:.2f} | `{query}` |" for query, n in counts.most_common()]
    lines.append(f"| **{sum(counts.values()) / total:.2f}** | **all** |")
    return "\n".join(lines) + "\n"


async def profile(
    simulator: Simulator, load: LoadGenerator, service: Service, producers: int, seconds: float
) -> str:
    busy0, total0 = machine_busy()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    attempts, rate = await phase(simulator, load, service, producers, seconds)
    profiler.stop()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    busy1, total1 = machine_busy()
    cores = os.cpu_count() or 1
    head = (
        f"## {producers} producers, Cal.com 0 ms: {rate:,.0f} attempts/s under the profiler\n"
        f"this process (the service): {cpu / wall:.0%} of one core,"
        f" {cpu / attempts * 1000:.2f} ms of CPU per attempt (incl. warm-up share);"
        f" the machine ({cores} cores): {(busy1 - busy0) / (total1 - total0):.0%} busy\n\n"
    )
    session = profiler.last_session
    root = session.root_frame() if session is not None else None
    breakdown = by_component(root) if root is not None else ""
    return head + breakdown + profiler.output_text(unicode=False, color=False, show_all=False)


def spy_component(frame: str) -> str:
    """The library of a py-spy frame, `function (path/file.py:line)`."""
    path = frame.rpartition(" (")[2].rstrip(")").rpartition(":")[0]
    head = path.split("/", 1)[0] if "/" in path else path.removesuffix(".py")
    if head in ("service", "events", "projections", "bench"):
        return f"ours: {head}/"
    return head


def spy_tables(raw: str, *, top: int = 25) -> str:
    """py-spy's collapsed stacks as: self time by library, time under each library, top leaves."""
    own: dict[str, float] = collections.defaultdict(float)
    under: dict[str, float] = collections.defaultdict(float)
    leaves: dict[str, float] = collections.defaultdict(float)
    total = 0.0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n, frames = float(count), stack.split(";")
        total += n
        own[spy_component(frames[-1])] += n
        leaves[frames[-1]] += n
        # Not the event loop's own frames nor the bench's timing middleware: they hold it all.
        for name in {spy_component(f) for f in frames[1:]} - {"ours: bench/"}:
            under[name] += n
    lines = ["| self | under | library |", "| ---: | ---: | --- |"]
    lines += [f"| {n / total:.0%} | {under[k] / total:.0%} | {k} |" for k, n in _largest(own)]
    lines += ["", "| self | function (leaf frame) |", "| ---: | --- |"]
    lines += [f"| {n / total:.1%} | {f} |" for f, n in _largest(leaves)[:top]]
    return "\n".join(lines) + "\n"


async def spy(
    simulator: Simulator,
    load: LoadGenerator,
    service: Service,
    producers: int,
    seconds: float,
    py_spy: str,
) -> str:
    """py-spy samples this process from outside during one phase (non-blocking, no idle)."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        command = [py_spy, "record", "--pid", str(os.getpid()), "--rate", "250"]
        command += ["--duration", str(int(seconds)), "--nonblocking", "--format", "raw"]
        sampler = await asyncio.create_subprocess_exec(
            *command, "--output", out.name, stdout=asyncio.subprocess.DEVNULL
        )
        children = {"Cal.com simulator": simulator.pid, "load generator": load.pid}
        before = cpu.snapshot(children)
        attempts, rate = await phase(simulator, load, service, producers, seconds)
        spent = cpu.per_unit(before, cpu.snapshot(children), attempts)
        await sampler.wait()
        raw = await asyncio.to_thread(Path(out.name).read_text)
    where = "; ".join(f"{name} {ms:.2f}" for name, ms in spent.items())
    head = (
        f"## {producers} producers, Cal.com 0 ms: {rate:,.0f} attempts/s, sampled by py-spy\n"
        f"CPU ms per attempt: {where}\n\n"
        "`self`: samples whose innermost Python frame is in the library (C code it calls"
        " included); `under`: samples with the library anywhere on the stack.\n\n"
    )
    return head + spy_tables(raw)


async def main(producers: int, seconds: float, py_spy: str | None) -> None:
    sections = []
    async with (
        bench_database(server_dsn()) as dsn,
        simulator_process() as simulator,
        running_service(dsn, simulator.base_url) as service,
        load_generator() as load,
    ):
        print(f"warming up with {producers} producers", file=sys.stderr)
        await phase(simulator, load, service, producers, 2.0)
        print("counting round trips", file=sys.stderr)
        sections.append(await count_round_trips(simulator, load, service, producers, seconds))
        print("profiling", file=sys.stderr)
        if py_spy is not None:
            sections.append(await spy(simulator, load, service, producers, seconds, py_spy))
        else:
            sections.append(await profile(simulator, load, service, producers, seconds))
    text = "\n".join(sections)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"profile-http-{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}.txt"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.profile_http", description=__doc__)
    parser.add_argument("--producers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--py-spy", metavar="PATH", help="sample with this py-spy binary")
    args = parser.parse_args()
    asyncio.run(main(args.producers, args.seconds, args.py_spy))
