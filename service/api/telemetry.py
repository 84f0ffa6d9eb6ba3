"""The outermost middleware: a correlation id for each request, its access line and its metrics.

It sits outside the JSON error middleware, so the status it records is the one the client got.
The correlation id is the producer's `X-Correlation-Id` when it sends a usable one, else a new
one; it is bound to every log line of the request and echoed in the answer.
"""

from __future__ import annotations

import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from service.api.keys import METRICS
from service.ops.logs import log_scope

access_log = logging.getLogger("booking_guard.access")

CORRELATION_HEADER = "X-Correlation-Id"
MAX_CORRELATION_ID_LENGTH = 128
UNMATCHED_ROUTE = "unmatched"
# Probes and scrapes arrive every few seconds from every monitor: their lines are DEBUG.
QUIET_ROUTES = frozenset({"/health", "/ready", "/metrics"})


class RequestsInFlight:
    """How many requests the app is answering now: what a shutdown waits for, said in its log."""

    def __init__(self) -> None:
        self.count = 0


REQUESTS_IN_FLIGHT = web.AppKey("requests_in_flight", RequestsInFlight)


def correlation_id_of(request: web.Request) -> str:
    """The producer's correlation id if it is short and printable, else a fresh one."""
    given = request.headers.get(CORRELATION_HEADER, "")
    if 0 < len(given) <= MAX_CORRELATION_ID_LENGTH and given.isprintable():
        return given
    return uuid.uuid4().hex


def route_of(request: web.Request) -> str:
    """The route template (`/v1/appointments/{appointment_id}`): bounded label values."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    return resource.canonical


@web.middleware
async def telemetry(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the correlation id, time the request, count it and write its access line."""
    correlation_id = correlation_id_of(request)
    started = time.perf_counter()
    status = 500
    in_flight = request.app.get(REQUESTS_IN_FLIGHT)
    if in_flight is not None:
        in_flight.count += 1
    with log_scope(correlation_id=correlation_id):
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers[CORRELATION_HEADER] = correlation_id
            return response
        except web.HTTPException as e:
            status = e.status
            e.headers[CORRELATION_HEADER] = correlation_id
            raise
        finally:
            if in_flight is not None:
                in_flight.count -= 1
            seconds = time.perf_counter() - started
            route = route_of(request)
            metrics = request.app.get(METRICS)
            if metrics is not None:
                metrics.observe_http(request.method, route, status, seconds)
            _log_access(request, route, status, seconds)


def _log_access(request: web.Request, route: str, status: int, seconds: float) -> None:
    """The request's access line. The record is made and handed to the handlers directly:
    `Logger.log` would first walk the stack to find its caller (`findCaller`), a cost on every
    request for a file name and line no formatter of ours writes."""
    level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    milliseconds = seconds * 1000
    record = access_log.makeRecord(
        access_log.name,
        level,
        __file__,
        0,
        "%s %s %d %.1f ms",
        (request.method, request.path, status, milliseconds),
        None,
        func="telemetry",
        extra={"route": route, "status": status, "duration_ms": round(milliseconds, 1)},
    )
    access_log.handle(record)
