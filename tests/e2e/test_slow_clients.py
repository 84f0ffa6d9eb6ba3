"""Slow clients: headers and bodies have total deadlines, and a process has a connection limit.

Raw sockets on loopback against the served app. Each test paces its bytes by waiting on the
socket with a timeout (the server's answer or close is the condition), never by sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import orjson
import pytest

from tests.conftest import wait_until
from tests.e2e.served import Client, served_app, simulator_on_loopback

MARGIN = 1.5
TIMEOUT = 0.6

Serve = Callable[..., Awaitable[Client]]


@pytest.fixture
async def serve(db: asyncpg.Pool, database_url: str) -> AsyncIterator[Serve]:
    async with AsyncExitStack() as stack:
        _, base_url = await stack.enter_async_context(simulator_on_loopback())

        async def make(**settings: Any) -> Client:
            return await served_app(
                stack, database_url=database_url, calcom_base_url=base_url, **settings
            )

        yield make


async def connect(client: Client) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    server = client.server
    assert server.host is not None and server.port is not None
    return await asyncio.open_connection(server.host, server.port)


async def trickle_until_answered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces: list[bytes], *, gap: float
) -> bytes:
    """Send one piece at a time, waiting up to `gap` for the server's answer between pieces."""
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(65536), timeout=gap)
        except TimeoutError:
            continue
    raise AssertionError("the server let every piece through without answering")


async def read_to_close(reader: asyncio.StreamReader, *, within: float) -> bytes:
    """Everything the server sends until it closes the connection, which must be `within`."""
    chunks = []
    async with asyncio.timeout(within):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def json_body(answer: bytes) -> dict[str, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), head
    parsed: dict[str, str] = orjson.loads(body)
    return parsed


async def test_a_silent_connection_is_closed_after_the_header_timeout(serve: Serve) -> None:
    client = await serve(header_timeout_seconds=TIMEOUT)
    reader, writer = await connect(client)
    started = time.monotonic()
    answer = await read_to_close(reader, within=TIMEOUT + MARGIN)
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408")
    assert json_body(answer)["error"] == "request_timeout"
    writer.close()


async def test_headers_trickled_byte_by_byte_hit_a_total_deadline(serve: Serve) -> None:
    client = await serve(header_timeout_seconds=TIMEOUT)
    reader, writer = await connect(client)
    started = time.monotonic()
    # Each piece arrives well inside the timeout: an idle-gap timer would never fire.
    pieces = [b"GET /health HTTP/1.1\r\nHost: x\r\n"] + [b"X-Slow: y\r\n"] * 200
    answer = await trickle_until_answered(reader, writer, pieces, gap=TIMEOUT / 6)
    answer += await read_to_close(reader, within=MARGIN)
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_request_after_an_answered_one_has_its_own_header_deadline(serve: Serve) -> None:
    client = await serve(header_timeout_seconds=TIMEOUT)
    reader, writer = await connect(client)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(reader.read(65536), timeout=MARGIN)
    assert first.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    pieces = [b"GET /health HTTP/1.1\r\n"] + [b"X-Slow: y\r\n"] * 200
    answer = await trickle_until_answered(reader, writer, pieces, gap=TIMEOUT / 6)
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_body_trickled_byte_by_byte_is_408_and_writes_nothing(
    serve: Serve, db: asyncpg.Pool
) -> None:
    client = await serve(body_timeout_seconds=TIMEOUT, header_timeout_seconds=TIMEOUT)
    reader, writer = await connect(client)
    body = b'{"call_id": "call_slow", "event_type_id": 1002}' + b" " * 400
    head = (
        b"POST /v1/booking-attempts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    started = time.monotonic()
    pieces = [head] + [body[i : i + 1] for i in range(len(body))]
    answer = await trickle_until_answered(reader, writer, pieces, gap=TIMEOUT / 6)
    answer += await read_to_close(reader, within=MARGIN)
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    error = json_body(answer)
    assert error["error"] == "request_timeout"
    assert "BOOKING_GUARD_BODY_TIMEOUT_SECONDS" in error["detail"]
    assert await db.fetchval("SELECT count(*) FROM events") == 0
    writer.close()


async def test_connections_beyond_the_limit_are_refused(serve: Serve) -> None:
    client = await serve(max_connections=2, header_timeout_seconds=30)
    held = [await connect(client) for _ in range(2)]
    reader, writer = await connect(client)
    answer = await read_to_close(reader, within=MARGIN)
    assert answer.startswith(b"HTTP/1.1 503")
    assert json_body(answer)["error"] == "too_many_connections"
    writer.close()
    # Once a held connection closes, a new one is served again.
    for _, held_writer in held:
        held_writer.close()

    async def served_again() -> bool:
        again_reader, again_writer = await connect(client)
        try:
            again_writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = await read_to_close(again_reader, within=MARGIN)
            return answer.startswith(b"HTTP/1.1 200")
        finally:
            again_writer.close()

    assert await wait_until(served_again, timeout=5)
