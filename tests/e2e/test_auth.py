"""Producer authentication: bearer tokens on the /v1 API; webhooks and probes stay open."""

from __future__ import annotations

import logging

import pytest

from tests.e2e.conftest import Harness, MakeHarness, attempt_body
from tests.e2e.signed import RETELL_KEY, post_retell

TOKENS = ["token-one-0123456789", "token-two-0123456789"]


@pytest.fixture
async def guarded(make_harness: MakeHarness) -> Harness:
    return await make_harness(api_tokens=TOKENS, retell_api_key=RETELL_KEY)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong",
        "Bearer token-one-0123456789-and-more",
        "Basic token-one-0123456789",
        "token-one-0123456789",
        "Bearer ",
    ],
)
async def test_a_request_without_a_valid_token_is_401_and_writes_nothing(
    guarded: Harness, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await guarded.client.post(
        "/v1/booking-attempts", json=attempt_body(), headers=headers
    )
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = await response.json()
    assert body["error"] == "unauthorized"
    assert body["detail"]
    assert await guarded.event_count() == 0


@pytest.mark.parametrize("token", TOKENS)
async def test_any_configured_token_is_accepted(guarded: Harness, token: str) -> None:
    status, answer = await guarded.book(attempt_body(), Authorization=f"Bearer {token}")
    assert status == 201, answer


@pytest.mark.parametrize(
    "path",
    [
        "/v1/appointments",
        "/v1/booking-attempts/00000000-0000-0000-0000-000000000000",
        "/v1/events",
        "/v1/no-such-route",
    ],
)
async def test_every_v1_read_needs_the_token_too(guarded: Harness, path: str) -> None:
    response = await guarded.client.get(path)
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"


@pytest.mark.parametrize("path", ["/health", "/openapi.json"])
async def test_probes_and_the_contract_stay_open(guarded: Harness, path: str) -> None:
    response = await guarded.client.get(path)
    assert response.status == 200


async def test_webhooks_need_their_signature_not_a_token(guarded: Harness) -> None:
    body = {"event": "call_started", "call": {"call_id": "call_1"}}
    assert (await post_retell(guarded, body)).status == 204
    unsigned = await post_retell(guarded, body, sign=False)
    assert unsigned.status == 401
    assert (await unsigned.json())["error"] == "invalid_signature"


async def test_without_tokens_the_api_is_open_with_one_warning(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="service.api.auth"):
        harness = await make_harness()
    warnings = [r for r in caplog.records if "BOOKING_GUARD_API_TOKENS" in r.getMessage()]
    assert len(warnings) == 1
    status, _ = await harness.book(attempt_body())
    assert status == 201
