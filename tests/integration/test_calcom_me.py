"""`GET /v2/me`: the simulator answers like Cal.com, and the client reads whose key it is."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from service.calcom.client import HttpCalcomClient
from service.calcom.port import CalcomAuthFailed
from service.calcom.simulator.event_types import SIMULATED_ACCOUNT
from service.calcom.simulator.server import CalcomSimulator


async def no_sleep(seconds: float) -> None:
    """No backoff: a refused key is not retried anyway."""


@pytest.fixture
async def served() -> AsyncIterator[tuple[CalcomSimulator, str]]:
    sim = CalcomSimulator()
    server = TestServer(sim.app)
    await server.start_server()
    yield sim, str(server.make_url("/")).rstrip("/")
    await server.close()


async def test_the_simulator_answers_me_in_calcoms_envelope_without_a_version_header(
    served: tuple[CalcomSimulator, str],
) -> None:
    _, origin = served
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{origin}/v2/me", headers={"Authorization": "Bearer cal_any"}) as answer,
    ):
        body = await answer.json()
    assert answer.status == 200
    assert body["status"] == "success"
    data = body["data"]
    assert {"id", "email", "timeZone", "username"} <= set(data)
    assert data["email"] == SIMULATED_ACCOUNT.email


async def test_the_client_reads_whose_key_it_is(served: tuple[CalcomSimulator, str]) -> None:
    _, origin = served
    async with HttpCalcomClient(api_key="cal_good", base_url=origin) as client:
        account = await client.get_me()
    assert account.id == SIMULATED_ACCOUNT.id
    assert account.email == SIMULATED_ACCOUNT.email
    assert account.time_zone == SIMULATED_ACCOUNT.time_zone
    assert account.describe().startswith(f"{SIMULATED_ACCOUNT.email} (user {account.id}")


async def test_a_revoked_key_is_refused_as_calcom_words_it(
    served: tuple[CalcomSimulator, str],
) -> None:
    sim, origin = served
    async with aiohttp.ClientSession() as http:
        revoked = await http.post(f"{origin}/_simulator/keys/revoke", json={"key": "cal_gone"})
        assert revoked.status == 200
    async with HttpCalcomClient(api_key="cal_gone", base_url=origin, sleep=no_sleep) as client:
        with pytest.raises(CalcomAuthFailed) as refused:
            await client.get_me()
    assert refused.value.status == 401
    assert "CustomThrottlerGuard - Invalid API Key" in refused.value.message
    assert sim.revoked_keys == {"cal_gone"}
