"""Which Cal.com the service talks to: the real one with an API key, else the simulator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from service.calcom.client import HttpCalcomClient, RequestObserver
from service.calcom.port import CalcomClient
from service.calcom.rate_limit import CalcomBudget
from service.calcom.simulator.server import CalcomSimulator
from service.calcom.simulator.shared import shared_simulator

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_calcom(
    *,
    api_key: str | None,
    base_url: str,
    given: CalcomClient | None = None,
    on_request: RequestObserver | None = None,
    budget: CalcomBudget | None = None,
    simulator_dir: Path | None = None,
) -> AsyncIterator[CalcomClient]:
    """Yield the Cal.com client for this key (the simulator without one), closing it after.

    `on_request` (metrics) observes each HTTP request of a client built here, not of `given`;
    `budget` (the shared rate limit) paces the client of a real key, not the simulator's.
    `simulator_dir` (the data directory): every process of it books against one simulator
    (simulator/shared.py); without it, this process serves one of its own.
    """
    if given is not None:
        yield given
        return
    if api_key is not None:
        async with HttpCalcomClient(
            api_key=api_key,
            base_url=base_url,
            on_request=on_request,
            budget=budget,
        ) as client:
            yield client
        return
    simulator = (
        serve_simulator(CalcomSimulator())
        if simulator_dir is None
        else shared_simulator(simulator_dir)
    )
    async with simulator as base_url:
        log.warning(
            "CALCOM_API_KEY is not set: booking against the built-in Cal.com simulator at %s",
            base_url,
        )
        async with HttpCalcomClient(
            api_key="cal_simulator", base_url=base_url, on_request=on_request
        ) as client:
            yield client


@asynccontextmanager
async def serve_simulator(
    simulator: CalcomSimulator, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve `simulator` on loopback (a free port by default); yield its origin."""
    runner = web.AppRunner(simulator.app, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
