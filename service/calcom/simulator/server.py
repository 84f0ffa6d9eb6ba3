"""The Cal.com simulator: Cal.com's bookings API v2 as an aiohttp app, with scriptable faults.

Run it with `booking-guard simulate-calcom`, or in tests with aiohttp's `TestServer(sim.app)`.
Cal.com's own endpoints live under `/v2`; the simulator's controls under `/_simulator`
(see service/calcom/simulator/admin.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from service.calcom.simulator.admin import add_admin_routes
from service.calcom.simulator.event_types import DEFAULT_EVENT_TYPES, SimulatedEventType
from service.calcom.simulator.faults import Fault, FaultQueue, parse_fault
from service.calcom.simulator.routes import API_VERSION, add_calcom_routes
from service.calcom.simulator.state import BookingLedger
from service.calcom.simulator.surface import Clock, RecordedRequest

RATE_WINDOW_SECONDS = 60
RATE_BLOCK_SECONDS = 60


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CalcomSimulator:
    """A Cal.com stand-in: bookings in memory, a fault script, a settable clock, rate limits."""

    def __init__(
        self,
        *,
        event_types: Iterable[SimulatedEventType] = DEFAULT_EVENT_TYPES,
        now: Clock = _utc_now,
        latency_ms: int = 0,
        faults: Iterable[Fault] = (),
        api_key: str | None = None,
        rate_limit: int = 120,
        enforce_rate_limit: bool = False,
        reject_past: bool = True,
        first_booking_id: int = 1,
    ) -> None:
        self.ledger = BookingLedger(event_types, first_id=first_booking_id)
        self.faults = FaultQueue(list(faults))
        self.now = now
        self.latency_ms = latency_ms
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.enforce_rate_limit = enforce_rate_limit
        self.reject_past = reject_past
        self.requests: deque[RecordedRequest] = deque(maxlen=1000)
        # Keys an operator revoked in Cal.com's settings: any other key is accepted, as a
        # simulator users point their agents at must not need a real key.
        self.revoked_keys: set[str] = set()
        self._windows: dict[str, tuple[float, int]] = {}
        self._blocked: dict[str, float] = {}
        # The rate limiter's clock (real time; tests may move it).
        self.monotonic: Callable[[], float] = time.monotonic
        self._release = asyncio.Event()
        self._app: web.Application | None = None

    @property
    def app(self) -> web.Application:
        """The aiohttp application serving this simulator (built once)."""
        if self._app is None:
            self._app = create_simulator_app(self)
        return self._app

    def record(self, request: web.Request, body: Any) -> None:
        """Keep a request to a Cal.com endpoint for inspection."""
        headers = CIMultiDict(request.headers)
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), headers, body)
        )

    def add_faults(self, *faults: Fault | str) -> None:
        """Script faults, in order; strings use the command-line spelling (`429:2`, `drop`)."""
        self.faults.add(*(parse_fault(f) if isinstance(f, str) else f for f in faults))

    def set_clock(self, moment: datetime | None = None, *, offset: timedelta | None = None) -> None:
        """Freeze the clock at `moment`, or run it `offset` from real time; neither: real time."""
        if moment is not None:
            frozen = moment.astimezone(UTC)
            self.now = lambda: frozen
        elif offset is not None:
            self.now = lambda: _utc_now() + offset
        else:
            self.now = _utc_now

    def reset(self) -> None:
        """Forget bookings, faults, recorded requests and rate windows; release hung requests."""
        self.ledger.reset()
        self.faults.clear()
        self.requests.clear()
        self._windows.clear()
        self._blocked.clear()
        self.revoked_keys.clear()
        self.now = _utc_now
        self.release_hung()

    def release_hung(self) -> None:
        """Let every request hanging on a `timeout` fault finish now."""
        self._release.set()
        self._release = asyncio.Event()

    async def hang(self, seconds: float) -> None:
        """Wait `seconds`, or until the simulator releases hung requests."""
        release = self._release
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await release.wait()

    def rate_headers(self, key: str) -> tuple[dict[str, str], bool]:
        """Count one request for `key`; the headers Cal.com sends, and whether it is refused.

        Cal.com's v2 throttler (shared/contracts/README.md, "Rate limit (v2 throttler)"):
        `rate_limit` requests per 60 s per key, every request counted; the one over the limit
        is a 429 and blocks the key for 60 s, during which every request is a 429 too;
        `X-RateLimit-Reset-Default` counts the seconds until the window or the block ends.
        """
        if not self.enforce_rate_limit:
            # A Cal.com without a limit (`--rate-limit 0`) announces none.
            return {}, False
        now = self.monotonic()
        blocked_until = self._blocked.get(key, 0.0)
        if now < blocked_until:
            return self._limit_headers(0, blocked_until - now), True
        started, count = self._windows.get(key, (now, 0))
        if now - started >= RATE_WINDOW_SECONDS:
            started, count = now, 0
        count += 1
        self._windows[key] = (started, count)
        if count > self.rate_limit:
            self._blocked[key] = now + RATE_BLOCK_SECONDS
            self._windows.pop(key, None)
            return self._limit_headers(0, RATE_BLOCK_SECONDS), True
        remaining = max(0, self.rate_limit - count)
        return self._limit_headers(remaining, RATE_WINDOW_SECONDS - (now - started)), False

    def _limit_headers(self, remaining: int, reset_seconds: float) -> dict[str, str]:
        return {
            "X-RateLimit-Limit-Default": str(self.rate_limit),
            "X-RateLimit-Remaining-Default": str(remaining),
            "X-RateLimit-Reset-Default": str(max(1, math.ceil(reset_seconds))),
        }


SIMULATOR = web.AppKey("calcom_simulator", CalcomSimulator)


def create_simulator_app(simulator: CalcomSimulator | None = None) -> web.Application:
    """The aiohttp app of `simulator` (a fresh default one when None)."""
    sim = simulator or CalcomSimulator()
    app = web.Application()
    app[SIMULATOR] = sim
    add_calcom_routes(app, sim)
    add_admin_routes(app, sim)

    async def release_on_shutdown(app: web.Application) -> None:
        # Hung `timeout` requests would otherwise hold the server's shutdown for a minute.
        sim.release_hung()

    app.on_shutdown.append(release_on_shutdown)
    return app


def run_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 8090,
    latency_ms: int = 0,
    faults: Iterable[str] = (),
    rate_limit: int = 120,
) -> int:
    """Serve a simulator until interrupted; the `simulate-calcom` command."""
    try:
        scripted = [parse_fault(text) for text in faults]
    except ValueError as e:
        print(f"booking-guard simulate-calcom: {e}", file=sys.stderr)
        return 2
    sim = CalcomSimulator(
        latency_ms=latency_ms,
        faults=scripted,
        rate_limit=max(rate_limit, 0),
        enforce_rate_limit=rate_limit > 0,
    )
    limit = f"{rate_limit} requests a minute per key" if rate_limit > 0 else "off"
    print(f"rate limit: {limit}", flush=True)
    for event_type in sim.ledger.event_types.values():
        print(f"event type {event_type.id} ({event_type.slug}): {event_type.kind}", flush=True)
    print(f"Cal.com API at http://{host}:{port}/v2 (cal-api-version {API_VERSION})", flush=True)
    print(
        f"controls at http://{host}:{port}/_simulator/{{bookings,faults,clock,reset}}", flush=True
    )
    web.run_app(sim.app, host=host, port=port, print=lambda text: print(text, flush=True))
    return 0
