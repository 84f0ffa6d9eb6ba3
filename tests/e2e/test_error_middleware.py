"""The last lines of the JSON error middleware: nothing answers text/plain or leaks a repr."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.api.errors import json_errors


class Boom(RuntimeError):
    pass


async def bug(request: web.Request) -> web.Response:
    raise Boom("secret=hunter2 <object at 0x7f>")


async def refused(request: web.Request) -> web.Response:
    raise asyncpg.InsufficientPrivilegeError("permission denied for function bg_append_events")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/bug", bug)
    app.router.add_get("/refused", refused)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "code"), [("/bug", "internal_error"), ("/refused", "database_error")]
)
async def test_an_unexpected_error_is_a_json_500_without_its_repr(
    client: TestClient[Any, Any], path: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get(path)

    assert response.status == 500
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == code
    text = str(body)
    assert "hunter2" not in text and "0x7f" not in text and "permission" not in text
    assert any(record.exc_info for record in caplog.records)  # the log has the traceback
