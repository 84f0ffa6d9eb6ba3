"""The log lines of one request carry its correlation id, call id and attempt id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from service.ops.logs import build_handler
from service.settings import Settings
from tests.e2e.conftest import CALL_687, MakeHarness, attempt_body


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every record of every logger, as the service writes them in production."""
    stream = io.StringIO()
    handler = build_handler(Settings(log_format="json"), stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_booking_requests_lines_name_the_call_and_attempt(
    make_harness: MakeHarness, json_log: io.StringIO
) -> None:
    harness = await make_harness()
    response = await harness.client.post(
        "/v1/booking-attempts",
        json=attempt_body(CALL_687, email="hansi.sputer@example.com"),
        headers={"X-Correlation-Id": "retell-call-687"},
    )
    assert response.status == 201
    assert response.headers["X-Correlation-Id"] == "retell-call-687"
    attempt_id = (await response.json())["attempt_id"]

    mine = [line for line in lines(json_log) if line.get("correlation_id") == "retell-call-687"]
    access = [line for line in mine if line["logger"] == "booking_guard.access"]
    assert len(access) == 1
    assert access[0]["route"] == "/v1/booking-attempts" and access[0]["status"] == 201
    for line in mine:
        assert line["call_id"] == CALL_687
        assert line["attempt_id"] == attempt_id
    assert "hansi.sputer" not in json_log.getvalue()


async def test_a_request_without_a_correlation_id_gets_one(
    make_harness: MakeHarness, json_log: io.StringIO
) -> None:
    harness = await make_harness()
    response = await harness.client.get("/v1/appointments")
    assert response.status == 200
    given = response.headers["X-Correlation-Id"]
    assert len(given) == 32
    (access,) = [line for line in lines(json_log) if line["logger"] == "booking_guard.access"]
    assert access["correlation_id"] == given
    assert "call_id" not in access
