"""The service under test, in this process: `create_app` on a loopback port, as `serve` runs it.

Its Cal.com is the simulator process, reached over HTTP by the service's own HttpCalcomClient.
Logging is configured as `booking-guard serve` configures it (JSON lines at INFO, one access
line per request), written to /dev/null: formatting the lines is part of what a request costs.

To split each request's time, the bench puts one middleware outside the service's own: it
gives the request a fresh counter in a context variable, the client's `on_request` hook adds
each Cal.com request's seconds to the counter of the request it runs in (asyncio copies the
context into every task, so requests never mix), and the answer carries both figures in headers
for the load generator. Nothing in the service is changed. The rate limiter is `serve`'s
(SharedCalcomBudget, leasing from the database), at a limit the load never reaches.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from bench.http_world import BENCH_RATE_LIMIT, CALCOM_HEADER, HANDLER_HEADER
from service.api.keys import POOL
from service.app import create_app
from service.booking.calcom_budget import SharedCalcomBudget
from service.booking.clock import SystemClock
from service.calcom.client import HttpCalcomClient
from service.calcom.rate_limit import Announcement, CalcomBudget
from service.ops.logs import configure_logging
from service.settings import Settings

_calcom_seconds: ContextVar[list[float] | None] = ContextVar("bench_calcom_seconds", default=None)


def observe_calcom(
    method: str, route: str, status: int | None, seconds: float, attempt: int, /
) -> None:
    """HttpCalcomClient's `on_request` hook: add the seconds to the current request's count."""
    spent = _calcom_seconds.get()
    if spent is not None:
        spent[0] += seconds


@web.middleware
async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: the handler's seconds and the Cal.com seconds inside them, as headers."""
    spent = [0.0]
    token = _calcom_seconds.set(spent)
    started = time.perf_counter()
    try:
        response = await handler(request)
    finally:
        _calcom_seconds.reset(token)
    response.headers[HANDLER_HEADER] = f"{time.perf_counter() - started:.6f}"
    response.headers[CALCOM_HEADER] = f"{spent[0]:.6f}"
    return response


@contextmanager
def production_logging(settings: Settings) -> Iterator[None]:
    """Logging as `booking-guard serve` sets it up, into /dev/null; restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with open(os.devnull, "w") as sink:
        handler = configure_logging(settings, stream=sink)
        # Errors also reach the bench's stderr, so that a 500 in a phase says why it happened;
        # a record below ERROR costs this handler one level comparison.
        errors = logging.StreamHandler(sys.stderr)
        errors.setLevel(logging.ERROR)
        root.addHandler(errors)
        try:
            yield
        finally:
            root.removeHandler(errors)
            root.removeHandler(handler)
            for old in handlers:
                root.addHandler(old)
            root.setLevel(level)


@dataclass(frozen=True, slots=True)
class Service:
    url: str
    app: web.Application
    calcom: HttpCalcomClient


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port, the timing middleware outermost; yield its origin."""
    app.middlewares.insert(0, timing)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class _AppBudget:
    """`serve`'s shared rate limiter (SharedCalcomBudget) over the app's own pool, made on first
    use (the pool exists once the app has started): its leases are the service's statements."""

    def __init__(self) -> None:
        self.app: web.Application | None = None
        self._budget: SharedCalcomBudget | None = None

    def _get(self) -> SharedCalcomBudget:
        if self._budget is None:
            assert self.app is not None
            self._budget = SharedCalcomBudget(
                self.app[POOL], api_key="cal_bench", limit=BENCH_RATE_LIMIT, clock=SystemClock()
            )
        return self._budget

    async def take(self) -> None:
        await self._get().take()

    async def observe(self, announcement: Announcement) -> None:
        await self._get().observe(announcement)


def calcom_client(calcom_url: str, budget: CalcomBudget | None = None) -> HttpCalcomClient:
    """The service's Cal.com client, its defaults as `serve` has them, timed per request."""
    return HttpCalcomClient(
        api_key="cal_bench", base_url=calcom_url, on_request=observe_calcom, budget=budget
    )


@asynccontextmanager
async def running_service(dsn: str, calcom_url: str) -> AsyncIterator[Service]:
    """booking-guard on a free loopback port, its defaults as `serve` has them."""
    settings = Settings(database_url=dsn, log_format="json", log_level="INFO")
    budget = _AppBudget()
    with production_logging(settings):
        async with calcom_client(calcom_url, budget) as calcom:
            app = create_app(settings, calcom=calcom)
            budget.app = app
            async with serving(app) as url:
                yield Service(url, app, calcom)
