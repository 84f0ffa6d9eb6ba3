"""System tests: real `booking-guard serve` processes on the test run's database, a Cal.com
simulator served by the test on loopback, and signals sent for real."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from service.calcom.simulator.server import CalcomSimulator
from tests.e2e.served import simulator_on_loopback
from tests.system.processes import Services


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[CalcomSimulator, str]]:
    """The simulator the processes book against, and its origin."""
    async with simulator_on_loopback() as served:
        yield served


@pytest.fixture
async def services(
    db: asyncpg.Pool, database_url: str, simulator: tuple[CalcomSimulator, str], tmp_path: Path
) -> AsyncIterator[Services]:
    """Start service processes on the (emptied) test database; all are killed at the end."""
    started = Services(
        tmp_path,
        {
            "DATABASE_URL": database_url,
            "CALCOM_API_KEY": "cal_system_test",
            "CALCOM_BASE_URL": simulator[1],
            "BOOKING_GUARD_LOG_FORMAT": "json",
            # The simulator here enforces no rate limit, and these tests send more than
            # Cal.com's 120 a minute on purpose; the limiter has tests of its own.
            "BOOKING_GUARD_CALCOM_RATE_LIMIT": "0",
        },
    )
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session
