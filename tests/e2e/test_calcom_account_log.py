"""At start the service says, in one line, which Cal.com it books in and whose key it holds."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import pytest

from service.calcom.simulator.event_types import SIMULATED_ACCOUNT
from tests.e2e.served import served_app, simulator_on_loopback

KEY = "cal_test_metrics"  # the key served_app configures


def start_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service.app" and "booking in" in r.message]


async def test_start_logs_the_calcom_origin_and_the_keys_user(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.app")
    async with simulator_on_loopback() as (_, origin), AsyncExitStack() as stack:
        await served_app(stack, database_url=database_url, calcom_base_url=origin)
    [line] = start_lines(caplog)
    assert line.levelno == logging.INFO
    assert f"Cal.com at {origin}" in line.message
    assert f"as {SIMULATED_ACCOUNT.email}" in line.message


async def test_a_refused_key_is_a_warning_and_the_service_starts_all_the_same(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.app")
    async with simulator_on_loopback() as (sim, origin), AsyncExitStack() as stack:
        sim.revoked_keys.add(KEY)
        client = await served_app(stack, database_url=database_url, calcom_base_url=origin)
        assert (await client.get("/health")).status == 200
    [line] = start_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "GET /v2/me failed" in line.message and "Invalid API Key" in line.message
