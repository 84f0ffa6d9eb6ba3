"""The HTTP connection under the routes: what aiohttp decides before any middleware runs.

Two gaps in aiohttp's own protocol, closed by a RequestHandler subclass:

- A request line or header aiohttp cannot parse (oversized, malformed, bad chunking) never
  reaches a handler: `RequestHandler.handle_error` answers it in text/plain. aiohttp offers no
  hook for that answer (web_protocol.py `_make_error_handler` calls `self.handle_error` directly,
  and `web.Application(handler_args=...)` only passes constructor keywords), so ours answers in
  the contract's JSON.
- aiohttp has no header-read timeout (its keep-alive timer, 75 s under run_app, is the only
  bound on a client trickling headers) and no connection limit. Ours starts a timer when a
  connection opens, and again when the first bytes of a later request arrive, and cancels it
  once the headers are parsed: a total, not an idle gap, so one byte a second does not keep it
  open. Past BOOKING_GUARD_MAX_CONNECTIONS a new connection is answered 503 and closed.

`GuardedRunner` plugs them in for `serve` and for the test servers. The body's timeout lives
where the body is read (api/bodies.py `read_body`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from service.api.errors import error_code, error_response
from service.api.keys import SETTINGS

log = logging.getLogger(__name__)

INTERNAL_DETAIL = "the service failed on this request; it is logged"


@dataclass(frozen=True)
class ConnectionLimits:
    """Bounds on one process's connections (the BOOKING_GUARD_*_TIMEOUT_SECONDS settings)."""

    header_timeout: float = 10.0
    max_connections: int = 1000


def raw_json_answer(status: int, reason: str, error: str, detail: str) -> bytes:
    """A whole HTTP/1.1 answer, for the moments no aiohttp response exists (no request yet)."""
    body = orjson.dumps({"error": error, "detail": detail})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


HEADER_TIMEOUT_ANSWER = raw_json_answer(
    408, "Request Timeout", "request_timeout", "the request's headers took too long to arrive"
)
TOO_MANY_CONNECTIONS_ANSWER = raw_json_answer(
    503,
    "Service Unavailable",
    "too_many_connections",
    "this process holds BOOKING_GUARD_MAX_CONNECTIONS connections; retry later",
)


class GuardedRequestHandler(RequestHandler):
    """aiohttp's HTTP/1 protocol with JSON error answers, a header timeout and a limit."""

    __slots__ = ("_header_timer", "_limits")

    def __init__(self, manager: web.Server, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = limits
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection, refuse it past the limit, start the header clock."""
        super().connection_made(transport)
        manager = self._manager
        if manager is not None and len(manager.connections) > self._limits.max_connections:
            log.warning("refused a connection: BOOKING_GUARD_MAX_CONNECTIONS reached")
            self._answer_and_close(TOO_MANY_CONNECTIONS_ANSWER)
            return
        self._start_header_timer()

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does; the header clock stops at a parsed request, starts anew."""
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._cancel_header_timer()
        elif self._header_timer is None:
            # The first bytes of a request after an earlier one on this connection.
            self._start_header_timer()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Forget the header clock with the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        self._header_timer = self._loop.call_later(
            self._limits.header_timeout, self._headers_too_slow
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._messages or self._request_in_progress:
            return
        self._answer_and_close(HEADER_TIMEOUT_ANSWER)

    def _answer_and_close(self, answer: bytes) -> None:
        # No request is being answered on this connection, so nothing else writes to it;
        # transport.close() sends what is buffered before it closes.
        if self.transport is not None:
            self.transport.write(answer)
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON answer to a request aiohttp could not parse or a handler let escape."""
        # aiohttp's own answer logs the error and refuses when bytes were already sent; keep
        # both and answer with ours instead.
        super().handle_error(request, status, exc, message)
        detail = INTERNAL_DETAIL if status >= 500 else (message or "").strip()[:200] or None
        response = error_response(status, error_code(status), detail)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """aiohttp's server, making GuardedRequestHandler connections."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits

    def __call__(self) -> RequestHandler:
        # The same keywords aiohttp's own Server passes (web_server.py `Server.__call__`).
        return GuardedRequestHandler(self, loop=self._loop, limits=self.limits, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections are GuardedRequestHandler's, with the app's settings."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        settings = self._app[SETTINGS]
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            limits=ConnectionLimits(
                header_timeout=settings.header_timeout_seconds,
                max_connections=settings.max_connections,
            ),
            **plain._kwargs,
        )
