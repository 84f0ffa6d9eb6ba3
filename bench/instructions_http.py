"""Instructions per booking attempt, which the machine's load cannot move: booking-guard beside
the two-statement rung, under valgrind's callgrind (`python -m bench.instructions_http`).

On two cores shared with other engineers' runs the CPU seconds of an attempt drift by 2x between
runs (bench/README.md); the instructions a process executes do not. Each side runs in a process
of its own under `valgrind --tool=callgrind` (the simulator and the load generator natively, in
theirs): one producer books for a warm-up, the counters are zeroed (`callgrind_control -z`),
one producer books for `--seconds`, the counters are dumped. booking-guard also runs idle for
the same time, counted the same way: its background loops (projectors, recovery) tick by the
wall clock, and under valgrind an attempt lasts ~50x longer, so their instructions are taken
out at the idle rate. User-space instructions only: the kernel's share of a request (its
socket calls, about the same on both sides) is not counted, so this ratio is larger than the
CPU-time ratio of http_throughput.

Slow (a few minutes per side on this machine); not part of `python -m bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench.http_ceilings import LADDER, TWO_STATEMENTS
from bench.http_service import running_service
from bench.http_world import Load, load_generator, simulator_process
from bench.report import RESULTS_DIR
from bench.server import bench_database, server_dsn

SIDES = ("booking-guard", "booking-guard idle", "two-statement rung")


@asynccontextmanager
async def _serving(side: str, dsn: str, calcom_url: str) -> AsyncIterator[str]:
    if side == "two-statement rung":
        async with LADDER[TWO_STATEMENTS](dsn, calcom_url) as url:
            yield url
    else:
        async with running_service(dsn, calcom_url) as service:
            yield service.url


def _callgrind(command: str) -> None:
    subprocess.run(
        ["callgrind_control", command, str(os.getpid())], check=True, capture_output=True
    )


async def measure(side: str, seconds: float) -> None:
    """Under callgrind: warm up, zero, book (or idle) for `seconds`, dump; print the count."""
    async with (
        bench_database(server_dsn()) as dsn,
        simulator_process() as simulator,
        load_generator(timeout=600) as load,
    ):
        await simulator.reset(latency_ms=0)
        async with _serving(side, dsn, simulator.base_url) as url:
            tag = f"warm{time.monotonic_ns()}"
            await load.run(Load(url, producers=1, seconds=seconds / 2, warmup=0, tag=tag))
            await simulator.reset(latency_ms=0)  # the measured attempts take the same slots
            _callgrind("-z")
            started = time.monotonic()
            attempts = 0
            if side == "booking-guard idle":
                await asyncio.sleep(seconds)
            else:
                tag = f"count{time.monotonic_ns()}"
                result = await load.run(Load(url, producers=1, seconds=seconds, warmup=0, tag=tag))
                if any(a.status != 201 for a in result.answers):
                    raise AssertionError(f"{side}: not every answer was a 201 confirmation")
                attempts = len(result.answers)
            _callgrind("-d")
            print(f"ATTEMPTS {attempts} SECONDS {time.monotonic() - started:.3f}", flush=True)


def _run_side(side: str, seconds: float, out_dir: Path) -> tuple[int, float, int]:
    """(attempts, seconds, instructions) of one side, valgrind running this module."""
    prefix = out_dir / re.sub(r"\W+", "-", side)
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={prefix}.%p",
        "--dump-line=no",
        sys.executable,
        "-m",
        "bench.instructions_http",
        "--side",
        side,
        "--seconds",
        str(seconds),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    attempts, elapsed = re.findall(r"ATTEMPTS (\d+) SECONDS ([\d.]+)", done.stdout)[0]
    (dump,) = out_dir.glob(f"{prefix.name}.*.1")  # the dump after the measured phase
    instructions = int(re.findall(r"^summary: (\d+)", dump.read_text(), re.M)[0])
    return int(attempts), float(elapsed), instructions


def main(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as out:
        counts = {side: _run_side(side, seconds, Path(out)) for side in SIDES}
    _, idle_seconds, idle = counts["booking-guard idle"]
    per_attempt = {}
    lines = [f"# Instructions per attempt, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", ""]
    for side in ("booking-guard", "two-statement rung"):
        attempts, elapsed, instructions = counts[side]
        background = idle / idle_seconds * elapsed if side == "booking-guard" else 0.0
        per_attempt[side] = (instructions - background) / attempts
        lines.append(
            f"{side}: {attempts} attempts in {elapsed:.1f} s, {instructions:,} instructions,"
            f" {background:,.0f} of them background at the idle rate:"
            f" {per_attempt[side]:,.0f} per attempt"
        )
    ratio = per_attempt["booking-guard"] / per_attempt["two-statement rung"]
    lines.append(f"booking-guard ÷ two-statement rung, instructions per attempt: {ratio:.2f}")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"instructions-http-{datetime.now(UTC):%Y-%m-%dT%H%M%SZ}.txt"
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.instructions_http", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side is not None:
        asyncio.run(measure(args.side, args.seconds))
    else:
        main(args.seconds)
