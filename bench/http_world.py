"""What surrounds the service in the HTTP benchmarks, each in a process of its own.

The Cal.com simulator is Cal.com, a remote server in production: in this process its CPU would
be taken from the service's event loop and counted as booking-guard's time. The load generator
is the phone agents: its own process, so that building requests and reading answers costs the
service nothing. Both are started with `spawn` (never fork a process with a running event loop
and open connections) and stopped on the way out, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from service.calcom.simulator.server import CalcomSimulator
from service.calcom.wiring import serve_simulator

PLAIN_EVENT_TYPE = 1002  # the simulator's plain event type: a new slot is always a new booking
SLOT_MINUTES = 30
START_SECONDS = 60.0  # a process that has not said where it listens by then is broken
CALCOM_HEADER = "X-Bench-Calcom-Seconds"  # set by bench/http_service.py's timing middleware
# The simulator's announced limit and the service's budget: the shared rate limiter runs as in
# `serve` (leasing in batches) at a limit no load here reaches.
BENCH_RATE_LIMIT = 1_000_000_000
HANDLER_HEADER = "X-Bench-Handler-Seconds"

_spawn = multiprocessing.get_context("spawn")


# --- the Cal.com simulator -------------------------------------------------------------------


def _simulator_process(conn: Connection) -> None:
    asyncio.run(_serve_until_told(conn))


async def _serve_until_told(conn: Connection) -> None:
    async with serve_simulator(CalcomSimulator(rate_limit=BENCH_RATE_LIMIT)) as base_url:
        conn.send(base_url)
        await asyncio.to_thread(conn.recv)  # anything (or the parent's end closing) stops it


class Simulator:
    """The simulator process, driven through its own admin endpoints."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, pid: int) -> None:
        self.base_url = base_url
        self.pid = pid
        self._session = session

    async def reset(self, *, latency_ms: int) -> None:
        """Forget every booking (a fresh calendar for the next phase) and set the latency."""
        for path, body in (("reset", {}), ("settings", {"latency_ms": latency_ms})):
            url = f"{self.base_url}/_simulator/{path}"
            async with self._session.post(url, json=body) as response:
                response.raise_for_status()


@asynccontextmanager
async def simulator_process() -> AsyncIterator[Simulator]:
    """A Cal.com simulator serving on loopback in a process of its own."""
    async with _child(_simulator_process) as (conn, pid), aiohttp.ClientSession() as session:
        base_url = await asyncio.to_thread(_receive, conn)
        yield Simulator(base_url, session, pid)


# --- the load generator ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Load:
    """One phase of load: `producers` phone agents booking back to back for `seconds`."""

    url: str  # the service's origin
    producers: int
    seconds: float
    warmup: float
    tag: str  # unique per phase: every call id and idempotency key in it is new


@dataclass(frozen=True, slots=True)
class Answer:
    """One booking attempt as the producer saw it, with what the service said it spent."""

    status: int
    total: float  # seconds from sending the request to having read the whole answer
    calcom: float  # seconds the service spent in Cal.com calls (NaN if it did not say)
    handler: float  # seconds from its outermost middleware's entry to the answer (NaN: idem)


@dataclass(frozen=True, slots=True)
class LoadResult:
    answers: list[Answer]  # the timed phase's, in completion order
    seconds: float  # the timed phase, until the last attempt in flight was answered
    warmup_attempts: int

    @property
    def rate(self) -> float:
        return len(self.answers) / self.seconds


def attempt_body(tag: str, n: int, first_slot: datetime) -> dict[str, Any]:
    """Attempt `n` of a phase: its own call, its own slot, its own attendee."""
    return {
        "call_id": f"call_{tag}_{n}",
        "event_type_id": PLAIN_EVENT_TYPE,
        "start": (first_slot + timedelta(minutes=SLOT_MINUTES * n)).isoformat(),
        "attendee": {
            "name": "Ada Lovelace",
            "email": f"caller+{tag}-{n}@example.com",
            "time_zone": "Europe/Berlin",
        },
        "metadata": {"agent": "bench"},
    }


async def generate(load: Load) -> LoadResult:
    """Run one phase: a warm-up whose answers are dropped, then the timed part."""
    loop = asyncio.get_running_loop()
    tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_slot = tomorrow + timedelta(days=1)
    numbers = itertools.count()
    url = f"{load.url}/v1/booking-attempts"
    connector = aiohttp.TCPConnector(limit=load.producers)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def produce(deadline: float, answers: list[Answer]) -> None:
            while loop.time() < deadline:
                body = attempt_body(load.tag, next(numbers), first_slot)
                started = time.perf_counter()
                async with session.post(url, json=body) as response:
                    await response.read()
                total = time.perf_counter() - started
                headers = response.headers
                answers.append(
                    Answer(
                        response.status,
                        total,
                        float(headers.get(CALCOM_HEADER, "nan")),
                        float(headers.get(HANDLER_HEADER, "nan")),
                    )
                )

        warm: list[Answer] = []
        deadline = loop.time() + load.warmup
        await asyncio.gather(*(produce(deadline, warm) for _ in range(load.producers)))
        timed: list[Answer] = []
        started = loop.time()
        deadline = started + load.seconds
        await asyncio.gather(*(produce(deadline, timed) for _ in range(load.producers)))
        return LoadResult(timed, loop.time() - started, len(warm))


def _load_process(conn: Connection) -> None:
    conn.send("ready")
    while True:
        try:
            load = conn.recv()
        except EOFError:
            return
        if load is None:
            return
        conn.send(asyncio.run(generate(load)))


class LoadGenerator:
    """The load generator process: one phase at a time."""

    def __init__(self, conn: Connection, timeout: float, pid: int) -> None:
        self._conn = conn
        self._timeout = timeout
        self.pid = pid

    async def run(self, load: Load) -> LoadResult:
        """Run `load` in the other process; this event loop stays free to serve it."""
        self._conn.send(load)
        limit = load.warmup + load.seconds + self._timeout
        result: LoadResult = await asyncio.to_thread(_receive, self._conn, limit)
        return result


@asynccontextmanager
async def load_generator(*, timeout: float = 30.0) -> AsyncIterator[LoadGenerator]:
    """A load generator process; `timeout` bounds how long a phase may overrun its seconds."""
    async with _child(_load_process) as (conn, pid):
        await asyncio.to_thread(_receive, conn)
        yield LoadGenerator(conn, timeout, pid)


# --- processes -------------------------------------------------------------------------------


def _receive(conn: Connection, timeout: float = START_SECONDS) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no answer from the child process within {timeout:.0f} s")
    return conn.recv()


@asynccontextmanager
async def _child(target: Any) -> AsyncIterator[tuple[Connection, int]]:
    """A spawned process running `target(conn)`; told to stop, then terminated if it lingers."""
    parent, child = _spawn.Pipe()
    process = _spawn.Process(target=target, args=(child,), daemon=True)
    process.start()
    child.close()
    if process.pid is None:
        raise RuntimeError("the child process did not start")
    try:
        yield parent, process.pid
    finally:
        with contextlib.suppress(OSError, ValueError):
            parent.send(None)
        parent.close()
        await asyncio.to_thread(process.join, 10)
        if process.is_alive():
            process.terminate()
            await asyncio.to_thread(process.join, 5)
