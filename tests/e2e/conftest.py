"""The service as producers see it: the app factory over HTTP, the Cal.com simulator behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from service.app import create_app
from service.booking.calcom_budget import SharedCalcomBudget
from service.booking.clock import FakeClock
from service.calcom.client import HttpCalcomClient
from service.calcom.simulator.server import CalcomSimulator
from service.calcom.wiring import serve_simulator
from service.settings import Settings
from tests.e2e.guarded_server import GuardedTestServer

# 11:04:27 in Berlin on the day of the incident; the slot is 2025-10-10 08:00 Berlin.
INCIDENT_MORNING = datetime(2025, 10, 6, 9, 4, 27, tzinfo=UTC)
INCIDENT_SLOT = "2025-10-10T06:00:00Z"
CALL_687 = "call_927bf219b2cc20cd24dc97c9f0b"
CALL_688 = "call_39d2ade6f4fc16c51110ca49cdf"
RETURNS_EXISTING = 1001
PLAIN = 1002


@dataclass
class Harness:
    client: TestClient[Any, Any]
    simulator: CalcomSimulator
    clock: FakeClock
    pool: asyncpg.Pool
    # The service's own Cal.com client (to the simulator), for tests that run commands beside it.
    calcom: HttpCalcomClient | None = None
    settings: Settings | None = None
    simulator_url: str = ""

    async def book(self, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
        response = await self.client.post("/v1/booking-attempts", json=body, headers=headers)
        payload: dict[str, Any] = await response.json()
        return response.status, payload

    async def event_count(self) -> int:
        n: int = await self.pool.fetchval("SELECT count(*) FROM events")
        return n

    async def event_types(self) -> list[str]:
        rows = await self.pool.fetch("SELECT type FROM events ORDER BY position")
        return [row["type"] for row in rows]

    async def appointment_count(self) -> int:
        n: int = await self.pool.fetchval("SELECT count(*) FROM appointments")
        return n


def attempt_body(
    call_id: str = CALL_687,
    *,
    name: str = "Hansi Sputer",
    email: str | None = "termin@example.com",
    event_type_id: int = RETURNS_EXISTING,
    start: str = INCIDENT_SLOT,
) -> dict[str, Any]:
    attendee: dict[str, Any] = {"name": name, "time_zone": "Europe/Berlin"}
    if email is not None:
        attendee["email"] = email
    return {
        "call_id": call_id,
        "event_type_id": event_type_id,
        "start": start,
        "attendee": attendee,
    }


MakeHarness = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_harness(db: asyncpg.Pool, database_url: str) -> AsyncIterator[MakeHarness]:
    """Build the service with options, a fresh simulator and a clock on the incident day."""
    async with AsyncExitStack() as stack:

        async def make(
            *,
            guards_enabled: bool = True,
            fallback_email: str | None = None,
            total_timeout: float = 0.5,
            max_attempts: int = 3,
            api_tokens: list[str] | None = None,
            retell_api_key: str | None = None,
            calcom_webhook_secret: str | None = None,
            orphan_policy: Literal["cancel", "alert"] = "cancel",
            calcom_api_key: str = "cal_test",
            settings_overrides: dict[str, Any] | None = None,
            calcom_rate_limit: int | None = None,
        ) -> Harness:
            clock = FakeClock(INCIDENT_MORNING)
            simulator = CalcomSimulator(now=clock.now)
            # The shared rate limit of a real key (app.py builds it for CALCOM_API_KEY).
            budget = (
                SharedCalcomBudget(db, api_key=calcom_api_key, limit=calcom_rate_limit, clock=clock)
                if calcom_rate_limit is not None
                else None
            )
            base_url = await stack.enter_async_context(serve_simulator(simulator))
            calcom = await stack.enter_async_context(
                HttpCalcomClient(
                    api_key=calcom_api_key,
                    base_url=base_url,
                    total_timeout=total_timeout,
                    max_attempts=max_attempts,
                    backoff_base=0.01,
                    backoff_max=0.05,
                    budget=budget,
                )
            )
            settings = Settings(
                database_url=database_url,
                fallback_email=fallback_email,
                api_tokens=api_tokens or [],
                retell_api_key=retell_api_key,
                calcom_webhook_secret=calcom_webhook_secret,
                orphan_policy=orphan_policy,
                **(settings_overrides or {}),
            )
            app = create_app(settings, calcom=calcom, clock=clock, guards_enabled=guards_enabled)
            client: TestClient[Any, Any] = TestClient(GuardedTestServer(app))
            await stack.enter_async_context(client)
            return Harness(
                client=client,
                simulator=simulator,
                clock=clock,
                pool=db,
                calcom=calcom,
                settings=settings,
                simulator_url=base_url,
            )

        yield make


@pytest.fixture
async def harness(make_harness: MakeHarness) -> Harness:
    return await make_harness()
