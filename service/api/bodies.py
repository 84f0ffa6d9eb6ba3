"""Request bodies: untrusted JSON (valid UTF-8, no NUL characters, no deeper than any body we
accept needs), and the raw signed bytes both webhooks verify."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from events.jsonb import unstorable_json
from service.api.keys import SETTINGS

# The booking body nests three levels and Cal.com's webhook bodies about six; deeper input is
# an attack on whoever walks it next (validators, the log's jsonb, the audit's readers).
MAX_JSON_DEPTH = 32
# Retell's call_ended and call_analyzed carry the whole transcript: far above the API's limit.
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024


class UnsafeJson(ValueError):
    """JSON that parses but that booking-guard will not take."""


def check_json(raw: bytes, value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise UnsafeJson when `value`, parsed from `raw`, nests deeper than `max_depth` or holds a
    NUL character."""
    problem = unstorable_json(raw, value, max_depth=max_depth)
    if problem is not None:
        raise UnsafeJson(problem.replace("it nests", "body nests"))


async def read_body(request: web.Request, *, max_size: int | None = None) -> bytes:
    """The raw body within BOOKING_GUARD_BODY_TIMEOUT_SECONDS in total, or 408.

    A total, not an idle gap: a client sending one byte a second would otherwise hold the
    connection (and a handler) for as long as it likes. `max_size` raises the app's body limit
    for this route (webhooks).
    """
    source = request if max_size is None else request.clone(client_max_size=max_size)
    if source.content.is_eof():
        # Every byte has arrived (a small body comes with its headers): reading cannot wait,
        # so no timer is armed and cancelled for it.
        return await source.read()
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout_seconds):
            return await source.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            reason="the body took longer than BOOKING_GUARD_BODY_TIMEOUT_SECONDS to arrive",
            headers={"Connection": "close"},
        ) from None


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or a 400 naming what is wrong with it."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise web.HTTPBadRequest(reason=f"body is not valid UTF-8 JSON: {e}") from e
    try:
        check_json(raw, value)
    except UnsafeJson as e:
        raise web.HTTPBadRequest(reason=str(e)) from e
    return value


async def read_signed(request: web.Request, max_size: int = WEBHOOK_MAX_BODY_BYTES) -> bytes:
    """The raw body, allowed up to `max_size` bytes (webhooks are bigger than API bodies).

    Signatures are checked over these bytes, never over a re-serialised body; the read is
    bounded in time like every body (`read_body`).
    """
    return await read_body(request, max_size=max_size)
