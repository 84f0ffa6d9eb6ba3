"""A deadlock or serialization failure anywhere answers 503 with Retry-After, never a 500."""

from __future__ import annotations

import json

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from service.api.errors import json_errors


@pytest.mark.parametrize(
    ("error", "sqlstate"),
    [
        (asyncpg.DeadlockDetectedError("deadlock detected"), "40P01"),
        (asyncpg.SerializationError("could not serialize access"), "40001"),
    ],
)
async def test_a_transaction_rolled_back_by_a_conflict_answers_503_with_retry_after(
    error: asyncpg.PostgresError, sqlstate: str
) -> None:
    assert error.sqlstate == sqlstate  # asyncpg raises exactly these classes for these codes

    async def handler(request: web.Request) -> web.StreamResponse:
        raise error

    response = await json_errors(make_mocked_request("POST", "/v1/booking-attempts"), handler)

    assert isinstance(response, web.Response)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert isinstance(response.body, bytes)
    body = json.loads(response.body)
    assert body["error"] == "database_conflict"
    assert body["detail"]
