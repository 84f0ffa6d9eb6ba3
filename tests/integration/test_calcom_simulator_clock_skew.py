"""Cal.com's clock off ours: the simulator's skew, from the constructor, the admin API and the
`simulate-calcom` command line."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service.calcom.client import HttpCalcomClient
from service.calcom.simulator.event_types import PLAIN_EVENT_TYPE_ID
from service.calcom.simulator.server import SIMULATOR, CalcomSimulator
from service.cli.serve import add_serve_commands, run_simulate
from tests.integration.test_calcom_simulator import origin, request

# Cal.com keeps milliseconds: a time read back may sit up to 1 ms before the one it was taken at.
MS = timedelta(milliseconds=1)


@pytest.fixture
async def behind() -> AsyncIterator[TestServer]:
    server = TestServer(CalcomSimulator(clock_skew_seconds=-120).app)
    await server.start_server()
    yield server
    await server.close()


async def test_created_at_runs_the_skew_behind_our_clock(behind: TestServer) -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    async with HttpCalcomClient(api_key="k", base_url=origin(behind)) as calcom:
        before = datetime.now(UTC)
        booked = await calcom.create_booking(
            request(event_type_id=PLAIN_EVENT_TYPE_ID, start=start)
        )
        after = datetime.now(UTC)

    assert booked.created_at is not None
    skew = timedelta(seconds=120)
    assert before - skew - MS <= booked.created_at <= after - skew


async def test_the_admin_setting_sets_the_skew_and_reset_keeps_the_configured_one(
    behind: TestServer,
) -> None:
    sim = behind.app[SIMULATOR]

    async with aiohttp.ClientSession(base_url=origin(behind)) as admin:

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with admin.request(method, f"/_simulator{path}", json=body) as response:
                assert response.status == 200, await response.text()
                return await response.json()

        settings = await call("POST", "/settings", {"clock_skew_seconds": 90})
        before = datetime.now(UTC)
        clock = await call("GET", "/clock")
        after = datetime.now(UTC)
        await call("POST", "/reset")

    assert settings["clock_skew_seconds"] == 90.0
    now = datetime.fromisoformat(clock["now"])
    assert before + timedelta(seconds=90) - MS <= now <= after + timedelta(seconds=90)
    assert sim.clock_skew_seconds == -120.0


def test_a_skew_and_a_clock_of_ones_own_do_not_mix() -> None:
    with pytest.raises(ValueError, match="clock_skew_seconds"):
        CalcomSimulator(now=lambda: datetime.now(UTC), clock_skew_seconds=5)


def test_a_frozen_clock_has_no_skew() -> None:
    sim = CalcomSimulator(clock_skew_seconds=30)
    assert sim.clock_skew_seconds == 30.0

    sim.set_clock(datetime(2025, 10, 6, tzinfo=UTC))

    assert sim.clock_skew_seconds is None


def simulate(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_serve_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate-calcom", *argv])


def test_simulate_calcom_takes_the_skew_and_webhook_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[web.Application] = []
    # aiohttp's run_app would serve until interrupted: keep the app it was given instead.
    monkeypatch.setattr(web, "run_app", lambda app, **options: served.append(app))
    args = simulate(
        [
            "--clock-skew-seconds=-30",
            "--webhook-url",
            "http://127.0.0.1:9/hooks",
            "--webhook-secret",
            "s3cret",
            "--webhook-fault",
            "drop",
            "--webhook-fault",
            "delay:250",
        ]
    )

    assert run_simulate(args) == 0

    sim = served[0][SIMULATOR]
    assert sim.clock_skew_seconds == -30.0
    assert (sim.webhooks.url, sim.webhooks.secret) == ("http://127.0.0.1:9/hooks", "s3cret")
    assert [f.kind for f in sim.webhooks.pending_faults()] == ["drop", "delay"]


def test_simulate_calcom_refuses_an_unknown_webhook_fault(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_simulate(simulate(["--webhook-fault", "explode"])) == 2
    assert "bad webhook fault 'explode'" in capsys.readouterr().err
