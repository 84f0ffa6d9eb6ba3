"""`booking-guard serve --workers N` (issue 16 item 5): attempts/s at 1 and 2 workers, beside
the ladder's two-statement rung at 1 and 2 workers.

Unlike http_throughput (the service in the benchmark's process), this starts the real command
as `serve` runs in production, in a process of its own (`python -m service.cli.main serve
--workers N`, JSON logs to a file, kept in bench/results/ when its phase fails) on the
benchmark's database, with the simulator and the
load generator in theirs, 64 producers at Cal.com 0 ms as in http_throughput. Both worker counts
run in each run, alternating which goes first, so the ratio 2 ÷ 1 is paired under one load.
On 2 cores shared with the simulator, the load generator and PostgreSQL, 2 workers cannot
double anything: the ratio says what a second core's worth of Python buys here.

The ladder at N workers: bench/http_ceilings.py's two-statement rung (the same rows in the same
two round trips, without models, logging or metrics) served by N processes of
`python -m bench.http_ceilings` sharing the port with SO_REUSEPORT, each with its own pool of
10 and Cal.com client, as serve's workers have theirs. Each run measures all four in
alternating order, so `serve ÷ rung` at each worker count and `2 ÷ 1` of each are paired
under one load.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.harness import Context, Figure, Samples
from bench.http_ceilings import TWO_STATEMENTS
from bench.http_overhead import phase_seconds
from bench.http_world import BENCH_RATE_LIMIT, Load, load_generator, simulator_process
from bench.report import RESULTS_DIR

BUDGET_SECONDS = 420
PRODUCERS = 64
WORKERS = (1, 2)
ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def serve(dsn: str, calcom_url: str, workers: int, log: Path) -> AsyncIterator[str]:
    """`booking-guard serve --workers N` on a free port until the block ends (SIGTERM).

    Its stdout and stderr (the JSON log) go to `log`, so that a wrong answer can be explained.
    """
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKING_GUARD_")}
    log_file = log.open("wb")
    env.update(
        DATABASE_URL=dsn,
        CALCOM_API_KEY="cal_bench",
        CALCOM_BASE_URL=calcom_url,
        BOOKING_GUARD_CALCOM_RATE_LIMIT=str(BENCH_RATE_LIMIT),
        BOOKING_GUARD_LOG_FORMAT="json",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log_file,
        stderr=asyncio.subprocess.STDOUT,
    )
    log_file.close()  # the child has its own descriptor
    url = f"http://127.0.0.1:{port}"
    try:
        await _healthy(url, process, workers)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


@asynccontextmanager
async def ladder(dsn: str, calcom_url: str, workers: int, log: Path) -> AsyncIterator[str]:
    """The two-statement rung served by `workers` processes on one port until the block ends.

    Their stderr goes to `log`."""
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "CALCOM_BASE_URL": calcom_url}
    log_file = log.open("wb")
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.http_ceilings",
            "--rung",
            TWO_STATEMENTS,
            "--port",
            str(port),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
        for _ in range(workers)
    ]
    log_file.close()
    url = f"http://127.0.0.1:{port}"
    try:
        await _all_answer(url, processes)
        yield url
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def _all_answer(url: str, processes: list[asyncio.subprocess.Process]) -> None:
    # Each process answers /health with its pid: fresh connections until every pid answered.
    deadline = time.monotonic() + START_SECONDS
    pids = {p.pid for p in processes}
    seen: set[int] = set()
    while seen != pids:
        if any(p.returncode is not None for p in processes):
            raise RuntimeError(f"a ladder process exited: {[p.returncode for p in processes]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"ladder processes {sorted(pids - seen)} did not answer")
        try:
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(f"{url}/health") as response,
            ):
                seen.add(int(await response.text()))
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.1)


async def _healthy(url: str, process: asyncio.subprocess.Process, workers: int) -> None:
    # Every worker must be up: /health over fresh connections until as many answered as there
    # are workers, several times over (the kernel spreads connections by their ports).
    deadline = time.monotonic() + START_SECONDS
    answered = 0
    while answered < 10 * workers:
        if process.returncode is not None:
            raise RuntimeError(f"serve --workers {workers} exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"serve --workers {workers} did not start")
        try:
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.get(f"{url}/health") as response,
            ):
                answered += response.status == 200
        except aiohttp.ClientConnectionError:
            answered = 0
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # the last worker's startup (migrations check, recovery) settles


def _keep_log(log: Path, what: str) -> Path:
    """The failed phase's server log, copied to bench/results/ where it outlives the run."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    kept = RESULTS_DIR / f"http-workers-{stamp}-{what}.log"
    shutil.copyfile(log, kept)
    return kept


SERVE, RUNG = "serve", "rung"
SERVERS = {SERVE: serve, RUNG: ladder}


def _name(server: str, workers: int) -> str:
    if server == SERVE:
        return f"serve --workers {workers}, {PRODUCERS} producers, Cal.com 0 ms: attempts/s"
    what = "process" if workers == 1 else "processes"
    return f"rung {TWO_STATEMENTS!r} in {workers} {what}, {PRODUCERS} producers: attempts/s"


async def run(ctx: Context) -> list[Figure]:
    samples = Samples()
    phases = [(server, n) for n in WORKERS for server in SERVERS]
    async with simulator_process() as simulator, load_generator() as load:
        for run_index in range(ctx.runs):
            order = phases if run_index % 2 == 0 else list(reversed(phases))
            for server, workers in order:
                name = _name(server, workers)
                with tempfile.TemporaryDirectory(prefix="bench-http-workers-") as scratch:
                    log = Path(scratch) / "server.log"
                    async with SERVERS[server](ctx.dsn, simulator.base_url, workers, log) as url:
                        await simulator.reset(latency_ms=0)  # a fresh calendar for the phase
                        result = await load.run(
                            Load(
                                url,
                                producers=PRODUCERS,
                                seconds=phase_seconds(ctx),
                                warmup=0.5,
                                tag=f"w{run_index}{server}{workers}x{time.monotonic_ns()}",
                            )
                        )
                    wrong = sorted({a.status for a in result.answers if a.status != 201})
                    if wrong:
                        kept = _keep_log(log, f"{server}{workers}")
                        ctx.progress(f"http_workers: {name}: {wrong}; the server's log: {kept}")
                        raise AssertionError(
                            f"{name}: answers other than 201: {wrong} (server log: {kept})"
                        )
                samples.add(name, result.rate)
                ctx.progress(
                    f"http_workers run {run_index + 1}: {server}, {workers} workers:"
                    f" {result.rate:,.0f} attempts/s"
                )
    figures = [samples.figure(_name(s, n), "attempts/s") for n in WORKERS for s in SERVERS]
    for server in SERVERS:
        ratio = f"{server}: 2 workers ÷ 1 worker, attempts/s, same run"
        samples.ratio(ratio, _name(server, 2), _name(server, 1))
        figures.append(samples.figure(ratio, "ratio"))
    for workers in WORKERS:
        ratio = f"serve ÷ rung at {workers} {'worker' if workers == 1 else 'workers'}, same run"
        samples.ratio(ratio, _name(SERVE, workers), _name(RUNG, workers))
        figures.append(samples.figure(ratio, "ratio"))
    return figures
