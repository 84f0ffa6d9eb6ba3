"""Input that used to reach a 500: encodings, non-ASCII digits, huge cursors, year-1 dates, NULs.

Each is a JSON 4xx naming what is wrong, on authenticated and webhook routes, and writes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse

from service.api.signatures import calcom_signature
from tests.e2e.conftest import Harness, MakeHarness, attempt_body
from tests.e2e.signed import CALCOM_PATH, CALCOM_SECRET, RETELL_KEY, RETELL_PATH, retell_sign

TOKEN = "hostile-wire-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def guarded(make_harness: MakeHarness) -> Harness:
    return await make_harness(
        api_tokens=[TOKEN], retell_api_key=RETELL_KEY, calcom_webhook_secret=CALCOM_SECRET
    )


async def json_error(response: ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert set(body) == {"error", "detail"}, body
    return body


def not_gzip_headers(**extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Content-Encoding": "gzip", **extra}


async def test_a_body_that_is_not_gzip_is_400_on_the_booking_route(guarded: Harness) -> None:
    raw = orjson.dumps(attempt_body())
    response = await guarded.client.post(
        "/v1/booking-attempts", data=raw, headers=not_gzip_headers(**AUTH)
    )
    body = await json_error(response, 400)
    assert "Content-Encoding" in body["detail"]
    assert await guarded.event_count() == 0


async def test_a_body_that_is_not_gzip_is_400_on_the_webhooks(guarded: Harness) -> None:
    raw = orjson.dumps({"event": "call_started", "call": {"call_id": "c1"}})
    signature = retell_sign(raw, timestamp_ms=int(guarded.clock.now().timestamp() * 1000))
    retell = await guarded.client.post(
        RETELL_PATH, data=raw, headers=not_gzip_headers(**{"x-retell-signature": signature})
    )
    await json_error(retell, 400)
    calcom = await guarded.client.post(
        CALCOM_PATH,
        data=raw,
        headers=not_gzip_headers(**{"X-Cal-Signature-256": calcom_signature(raw, CALCOM_SECRET)}),
    )
    await json_error(calcom, 400)
    assert await guarded.event_count() == 0


QUERIES = [
    ("/v1/events?limit=%C2%B2", "limit"),  # "²": str.isdigit() says yes, int() agrees
    ("/v1/events?limit=%D9%A3", "limit"),  # Arabic-Indic three
    ("/v1/calls/c1/events?limit=%EF%BC%95", "limit"),  # fullwidth five
    ("/v1/events?after=99999999999999999999.1", "after"),
    ("/v1/events?after=1.99999999999999999999", "after"),
    ("/v1/events?after=%C2%B2.%C2%B2", "after"),
    ("/v1/calls/c1/events?after=18446744073709551616.1", "after"),
    ("/v1/rejections?after=99999999999999999999999.1", "after"),
    ("/v1/rejections?after=1.99999999999999999999", "after"),
    ("/v1/rejections?to=0001-01-01T00:00:00%2B01:00", "to"),
    ("/v1/rejections?to=0001-01-01T00:00:00Z", "to"),
    ("/v1/rejections?from=9999-12-31T23:59:59-01:00", "from"),
    ("/v1/rejections?from=0001-01-01T00:00:00%2B01:00&to=0001-01-05T00:00:00Z", "from"),
    ("/v1/appointments?from=0001-01-01T00:00:00%2B01:00", "from"),
    ("/v1/appointments?to=9999-12-31T23:59:59-01:00", "to"),
    ("/v1/appointments?limit=%C2%B2", "limit"),
    ("/v1/calls/a%00b/events", "call_id"),
    ("/v1/calcom-bookings/x%00/events", "uid"),
]


@pytest.mark.parametrize(("path", "field"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_an_unreadable_query_is_a_json_4xx_naming_it(
    guarded: Harness, path: str, field: str
) -> None:
    response = await guarded.client.get(path, headers=AUTH)
    assert response.status in (400, 422), await response.text()
    body = await json_error(response, response.status)
    assert field in str(body["detail"]), body


DATES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("start", DATES)
async def test_a_booking_at_the_ends_of_the_calendar_is_422(guarded: Harness, start: str) -> None:
    response = await guarded.client.post(
        "/v1/booking-attempts", json=attempt_body(start=start), headers=AUTH
    )
    body = await json_error(response, 422)
    assert "start" in str(body["detail"])
    assert await guarded.event_count() == 0


@pytest.mark.parametrize("where", ["createdAt", "startTime", "endTime"])
@pytest.mark.parametrize("moment", DATES)
async def test_a_signed_calcom_webhook_at_the_ends_of_the_calendar_is_422(
    guarded: Harness, where: str, moment: str
) -> None:
    body: dict[str, Any] = {
        "triggerEvent": "BOOKING_CREATED",
        "createdAt": "2025-10-06T10:00:00Z",
        "payload": {
            "uid": "u1",
            "startTime": "2025-10-10T06:00:00Z",
            "metadata": {"call_id": "c1"},
        },
    }
    if where == "createdAt":
        body["createdAt"] = moment
    else:
        body["payload"][where] = moment
    raw = orjson.dumps(body)
    response = await guarded.client.post(
        CALCOM_PATH,
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Cal-Signature-256": calcom_signature(raw, CALCOM_SECRET),
        },
    )
    detail = await json_error(response, 422)
    assert where in str(detail["detail"])
    assert await guarded.event_count() == 0


async def raw_exchange(harness: Harness, request: bytes) -> bytes:
    """Send bytes on a fresh connection to the test server and read until it closes."""
    server = harness.client.server
    assert server.host is not None and server.port is not None
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/booking-attempts HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ],
    ids=["bad chunk size", "oversized header", "malformed header"],
)
async def test_a_protocol_error_is_answered_with_json(
    guarded: Harness, request_bytes: bytes
) -> None:
    answer = await raw_exchange(guarded, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), answer[:200]
    assert b"application/json" in head.lower()
    error = orjson.loads(body)
    assert error["error"] == "bad_request"
    assert error["detail"]
    assert await guarded.event_count() == 0


APPOINTMENT_QUERIES = [
    "/v1/appointments?call_id=a%00b",
    "/v1/appointments?after=0001-01-01T00:00:00%2B01:00|0b9e2c53-4f7e-4a37-9f0e-8a2f5b0c1d2e",
]


@pytest.mark.parametrize("path", APPOINTMENT_QUERIES)
async def test_an_unreadable_appointments_query_is_a_json_422(guarded: Harness, path: str) -> None:
    response = await guarded.client.get(path, headers=AUTH)
    await json_error(response, 422)
