"""The HTTP connection under the routes: errors aiohttp answers before any middleware runs.

A request line or header aiohttp cannot parse (oversized, malformed, bad chunking) never reaches
a handler: aiohttp's `RequestHandler.handle_error` answers it in text/plain. aiohttp offers no
hook for that answer (web_protocol.py `_make_error_handler` calls `self.handle_error` directly,
and `web.Application(handler_args=...)` only passes constructor keywords), so the server builds
its connections from a subclass that answers in the contract's JSON. `GuardedRunner` plugs it in
for `serve` and for the test servers.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from service.api.errors import error_code, error_response

INTERNAL_DETAIL = "the service failed on this request; it is logged"


class GuardedRequestHandler(RequestHandler):
    """aiohttp's HTTP/1 protocol, answering its own errors with `{"error", "detail"}`."""

    __slots__ = ()

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

    def __call__(self) -> RequestHandler:
        # The same keywords aiohttp's own Server passes (web_server.py `Server.__call__`).
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server answers protocol errors in JSON."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **plain._kwargs,
        )
