"""The service as `serve` builds it: Cal.com reached over HTTP through settings, not injected.

Unlike `make_harness`, which hands the app a ready Cal.com client, these apps build their own from
CALCOM_API_KEY and CALCOM_BASE_URL (pointing at a simulator on loopback), so the wiring under test
is production's: the metrics hook on the Cal.com client, the recovery loop, the real clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from service.app import create_app
from service.booking.clock import Clock
from service.calcom.simulator.server import CalcomSimulator
from service.calcom.wiring import serve_simulator
from service.settings import Settings
from tests.e2e.guarded_server import GuardedTestServer

Client = TestClient[Any, Any]


@asynccontextmanager
async def simulator_on_loopback() -> AsyncIterator[tuple[CalcomSimulator, str]]:
    """A Cal.com simulator on a free loopback port, and its origin."""
    simulator = CalcomSimulator()
    async with serve_simulator(simulator) as base_url:
        yield simulator, base_url


async def served_app(
    stack: AsyncExitStack,
    *,
    database_url: str,
    calcom_base_url: str,
    clock: Clock | None = None,
    **settings: Any,
) -> Client:
    """A test client of `create_app` with these settings; closed with `stack`."""
    configured = Settings(
        database_url=database_url,
        calcom_api_key=SecretStr("cal_test_metrics"),
        calcom_base_url=calcom_base_url,
        **settings,
    )
    client: Client = TestClient(GuardedTestServer(create_app(configured, clock=clock)))
    await stack.enter_async_context(client)
    return client


def future_slot(days: int = 3, hour: int = 9) -> str:
    """A whole hour `days` from now, in the contract's RFC 3339 form."""
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return moment.replace(hour=hour).strftime("%Y-%m-%dT%H:%M:%SZ")


def body(call_id: str, start: str, *, email: str, event_type_id: int = 1002) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "event_type_id": event_type_id,
        "start": start,
        "attendee": {"name": "Hans Schuster", "email": email, "time_zone": "Europe/Berlin"},
    }


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by name and label set."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(exposition: str, name: str, **labels: str) -> float | None:
    """The sample `name{labels}` of an exposition; None when it is absent."""
    return samples(exposition).get((name, frozenset(labels.items())))
