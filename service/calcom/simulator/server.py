"""The Cal.com simulator: Cal.com's bookings API v2 as an aiohttp app, with scriptable faults.

Run it with `booking-guard simulate-calcom`, or in tests with aiohttp's `TestServer(sim.app)`.
Cal.com's own endpoints live under `/v2`; the simulator's controls under `/_simulator`
(see service/calcom/simulator/admin.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from service.calcom.simulator.admin_lifecycle import add_lifecycle_routes
from service.calcom.simulator.event_types import (
    DEFAULT_EVENT_TYPES,
    SIMULATED_ACCOUNT,
    SimulatedEventType,
    SimulatedHost,
)
from service.calcom.simulator.faults import Fault, FaultQueue, Operation, parse_fault
from service.calcom.simulator.input import SimulatedError
from service.calcom.simulator.routes import API_VERSION, add_calcom_routes
from service.calcom.simulator.state import BookingLedger, SimulatedBooking
from service.calcom.simulator.surface import Clock, RecordedRequest
from service.calcom.simulator.webhook_payloads import Trigger, booking_webhook
from service.calcom.simulator.webhooks import (
    WebhookDispatcher,
    WebhookFault,
    parse_webhook_fault,
)

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
        clock_skew_seconds: float = 0.0,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_faults: Iterable[WebhookFault | str] = (),
        account: SimulatedHost = SIMULATED_ACCOUNT,
    ) -> None:
        self.account = account
        self.ledger = BookingLedger(event_types, first_id=first_booking_id)
        self.faults = FaultQueue(list(faults))
        self.now = now
        # Cal.com's servers keep their own time: `createdAt` may be seconds off ours.
        self._skew = timedelta(seconds=clock_skew_seconds)
        self._offset: timedelta | None = timedelta(0) if now is _utc_now else None
        if clock_skew_seconds:
            if now is not _utc_now:
                raise ValueError("clock_skew_seconds shifts the real clock: give it or now=")
            self.set_clock(offset=self._skew)
        self.webhooks = WebhookDispatcher(url=webhook_url, secret=webhook_secret)
        self.add_webhook_faults(*webhook_faults)
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

    def add_answer_fault(
        self,
        body: Any,
        *,
        status: int = 201,
        operation: Operation | None = "create",
        writes: bool = True,
    ) -> None:
        """Script the next `operation` (None: any) to answer `status` with `body`: JSON of any
        value, or `bytes` sent as they are (not JSON at all). With `writes` the request takes
        effect first, as when a proxy garbles Cal.com's real answer."""
        # The standard library writes integers beyond 64 bits, which orjson refuses.
        raw = (
            body.decode("utf-8", "surrogateescape") if isinstance(body, bytes) else json.dumps(body)
        )
        self.faults.add(
            Fault(
                kind="answer",
                operation=operation,
                answer_body=raw,
                answer_status=status,
                answer_writes=writes,
            )
        )

    def add_webhook_faults(self, *faults: WebhookFault | str) -> None:
        """Script faults of the next webhooks, in order: `drop`, `duplicate`, `delay:<ms>`,
        `reorder`."""
        self.webhooks.add_faults(*faults)

    def set_webhook(self, url: str | None, secret: str | None = None) -> None:
        """Send webhooks to `url`, signed with `secret` (None: unsigned); `url` None: none."""
        self.webhooks.url, self.webhooks.secret = url, secret

    async def webhooks_idle(self, timeout: float = 5.0) -> None:
        """Wait until every webhook raised so far was sent; TimeoutError after `timeout` s."""
        await self.webhooks.idle(timeout)

    def notify(
        self, trigger: Trigger, booking: SimulatedBooking, *, confirmed_by_host: bool = False
    ) -> None:
        """Raise the webhook Cal.com sends for `trigger` about `booking`, now."""
        previous = booking.rescheduled_from_uid
        body = booking_webhook(
            trigger,
            booking,
            created_at=self.now(),
            previous=None if previous is None else self.ledger.get(previous),
            confirmed_by_host=confirmed_by_host,
        )
        self.webhooks.enqueue(body)

    def accept(self, uid: str) -> SimulatedBooking:
        """The host confirms a pending booking: BOOKING_CREATED, status ACCEPTED."""
        booking = self.ledger.accept(uid, now=self.now())
        self.notify("BOOKING_CREATED", booking, confirmed_by_host=True)
        return booking

    def decline(self, uid: str, reason: str | None = None) -> SimulatedBooking:
        """The host rejects a pending booking: BOOKING_REJECTED with `rejectionReason`."""
        booking = self.ledger.decline(uid, reason=reason, now=self.now())
        self.notify("BOOKING_REJECTED", booking)
        return booking

    def cancel_as_attendee(self, uid: str, reason: str | None = None) -> SimulatedBooking:
        """The attendee cancels from Cal.com's e-mail, not through the API: BOOKING_CANCELLED."""
        booking = self.ledger.get(uid)
        if booking.status == "cancelled":
            raise SimulatedError(409, "ConflictException", f"Booking {uid} is already cancelled")
        self.ledger.cancel(uid, reason=reason, now=self.now(), by=booking.attendee["email"])
        self.notify("BOOKING_CANCELLED", booking)
        return booking

    def set_clock(self, moment: datetime | None = None, *, offset: timedelta | None = None) -> None:
        """Freeze the clock at `moment`, or run it `offset` from real time; neither: real time."""
        if moment is not None:
            frozen = moment.astimezone(UTC)
            self.now = lambda: frozen
        elif offset is not None:
            self.now = lambda: _utc_now() + offset
        else:
            self.now = _utc_now
        self._offset = offset if moment is None else None

    @property
    def clock_skew_seconds(self) -> float | None:
        """How far Cal.com's clock runs from this machine's (None while frozen)."""
        return None if self._offset is None else self._offset.total_seconds()

    @clock_skew_seconds.setter
    def clock_skew_seconds(self, seconds: float) -> None:
        self.set_clock(offset=timedelta(seconds=seconds))

    def reset(self) -> None:
        """Forget bookings, faults, recorded requests and rate windows; release hung requests."""
        self.ledger.reset()
        self.faults.clear()
        self.requests.clear()
        self._windows.clear()
        self.webhooks.reset()
        # Back to the clock it was started with: a configured skew is part of the deployment.
        self.set_clock(offset=self._skew if self._skew else None)
        self._blocked.clear()
        self.revoked_keys.clear()
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
    add_lifecycle_routes(app, sim)

    async def release_on_shutdown(app: web.Application) -> None:
        # Hung `timeout` requests would otherwise hold the server's shutdown for a minute.
        sim.release_hung()

    app.on_shutdown.append(release_on_shutdown)
    app.cleanup_ctx.append(sim.webhooks.running)
    return app


def run_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 8090,
    latency_ms: int = 0,
    faults: Iterable[str] = (),
    clock_skew_seconds: float = 0.0,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    webhook_faults: Iterable[str] = (),
    rate_limit: int = 120,
) -> int:
    """Serve a simulator until interrupted; the `simulate-calcom` command."""
    try:
        scripted = [parse_fault(text) for text in faults]
        webhook_scripted = [parse_webhook_fault(text) for text in webhook_faults]
    except ValueError as e:
        print(f"booking-guard simulate-calcom: {e}", file=sys.stderr)
        return 2
    sim = CalcomSimulator(
        latency_ms=latency_ms,
        faults=scripted,
        clock_skew_seconds=clock_skew_seconds,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        webhook_faults=webhook_scripted,
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
    if webhook_url is not None:
        signed = "signed" if webhook_secret else "unsigned (no-secret-provided)"
        print(f"webhooks to {webhook_url}, {signed}", flush=True)
    if clock_skew_seconds:
        print(f"Cal.com's clock runs {clock_skew_seconds:+g} s from this machine's", flush=True)
    web.run_app(sim.app, host=host, port=port, print=lambda text: print(text, flush=True))
    return 0
