"""The simulated Cal.com's `/v2/bookings` endpoints, in Cal.com's envelopes and field names."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from aiohttp import web

from service.calcom.port import to_calcom_time
from service.calcom.simulator.catalog import (
    EVENT_TYPES_API_VERSION,
    event_type_output,
    me_output,
)
from service.calcom.simulator.faults import Fault, Operation, malformed
from service.calcom.simulator.input import (
    SimulatedError,
    bad_request,
    parse_create,
    parse_find,
    parse_time,
)
from service.calcom.simulator.schedule import free_slots
from service.calcom.simulator.surface import Simulator
from service.calcom.slots import SLOTS_API_VERSION

API_VERSION = "2024-08-13"


Action = Callable[[Simulator, web.Request, Any], Awaitable[web.Response]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_calcom_routes(app: web.Application, sim: Simulator) -> None:
    """Register Cal.com's bookings endpoints (`/v2/bookings...`) answering from `sim`."""
    app.router.add_post("/v2/bookings", _calcom(sim, "create", _create))
    app.router.add_get("/v2/bookings", _calcom(sim, "find", _find))
    app.router.add_get("/v2/bookings/{uid}", _calcom(sim, "get", _get))
    app.router.add_post("/v2/bookings/{uid}/cancel", _calcom(sim, "cancel", _cancel))
    app.router.add_post("/v2/bookings/{uid}/reschedule", _calcom(sim, "reschedule", _reschedule))
    app.router.add_get("/v2/slots", _calcom(sim, "slots", _slots, version=SLOTS_API_VERSION))
    app.router.add_get(
        "/v2/event-types/{id}",
        _calcom(sim, "event_type", _event_type, version=EVENT_TYPES_API_VERSION),
    )
    # Cal.com's MeController takes every API version: no cal-api-version is required.
    app.router.add_get("/v2/me", _calcom(sim, "me", _me, version=None))


def _calcom(
    sim: Simulator, operation: Operation, action: Action, *, version: str | None = API_VERSION
) -> Handler:
    """Wrap a Cal.com endpoint: record, latency, auth, rate limit, version, scripted fault."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        sim.record(request, body)
        if sim.latency_ms:
            await asyncio.sleep(sim.latency_ms / 1000)
        limits, limited = sim.rate_headers(
            request.headers.get("Authorization", request.remote or "")
        )
        answer = await _answer(sim, request, operation, action, body, limited, version)
        if answer is None:  # the connection was dropped
            return web.Response(status=204)
        for name, value in limits.items():
            answer.headers.setdefault(name, value)  # a 429 keeps its own Remaining: 0
        return answer

    return handler


async def _answer(
    sim: Simulator,
    request: web.Request,
    operation: Operation,
    action: Action,
    body: Any,
    limited: bool,
    version: str | None,
) -> web.Response | None:
    if sim.api_key is not None and request.headers.get("Authorization") != f"Bearer {sim.api_key}":
        return error_response(sim, request, 401, "UnauthorizedException", "Invalid Access Token.")
    if _bearer(request) in sim.revoked_keys:
        # Cal.com's v2 throttler guard resolves the key before anything else and words an
        # unknown or revoked one so (shared/contracts/README.md, "Rate limit").
        return error_response(
            sim, request, 401, "UnauthorizedException", "CustomThrottlerGuard - Invalid API Key"
        )
    if limited:
        return _throttled(sim, request, None)
    if version is not None and request.headers.get("cal-api-version") != version:
        return error_response(
            sim,
            request,
            400,
            "BadRequestException",
            f"simulator: header cal-api-version: {version} is required; without it Cal.com "
            "silently answers from an older controller with another body shape",
        )
    fault = sim.faults.take(operation)
    if fault is None or fault.kind == "delay":
        if fault is not None:
            await asyncio.sleep(fault.delay_ms / 1000)
        return await _run(sim, request, action, body)
    if fault.kind == "malformed":
        return _malformed(await _run(sim, request, action, body), fault)
    if fault.writes_first:
        await _run(sim, request, action, body)
    if fault.kind == "answer":
        # Whatever the fault says, byte for byte: the client must survive any answer's shape.
        return web.Response(
            status=fault.answer_status,
            body=fault.answer_body.encode("utf-8", "surrogateescape"),
            content_type="application/json",
        )
    if fault.kind in ("timeout", "timeout_after_write"):
        await sim.hang(fault.hang_seconds)
        return error_response(sim, request, 504, "GatewayTimeoutException", "simulated timeout")
    if fault.kind in ("drop", "drop_after_write"):
        _drop(request)
        return None
    if fault.kind == "429":
        return _throttled(sim, request, fault.retry_after)
    if fault.kind == "409":
        # Cal.com's race on its own idempotency key: a bare NestJS body, no envelope.
        return _json(409, {"statusCode": 409, "message": "booking_conflict_error"})
    status = HTTPStatus(int(fault.kind))
    return error_response(sim, request, status, _exception_name(status), status.phrase)


def _malformed(answer: web.Response, fault: Fault) -> web.Response:
    """The answer with its booking(s) broken as `fault` says; error answers pass unchanged."""
    if not 200 <= answer.status < 300 or not isinstance(answer.body, bytes):
        return answer
    envelope = orjson.loads(answer.body)
    data = envelope.get("data")
    if isinstance(data, dict):
        envelope["data"] = malformed(data, fault.malformation)
    elif isinstance(data, list):
        envelope["data"] = [malformed(item, fault.malformation) for item in data]
    return _json(answer.status, envelope)


async def _run(sim: Simulator, request: web.Request, action: Action, body: Any) -> web.Response:
    try:
        return await action(sim, request, body)
    except SimulatedError as e:
        return error_response(sim, request, e.status, e.code, e.message)


async def _create(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    parsed = parse_create(body)
    event_type = sim.ledger.event_types.get(parsed.event_type_id or 0)
    for slug in event_type.required_fields if event_type is not None else ():
        answer = parsed.booking_fields_responses.get(slug)
        if answer is None or answer == "":
            # Cal.com checks the responses against the event type's booking fields and
            # refuses the whole booking naming the field.
            raise bad_request(f"bookingFieldsResponses.{slug}: error_required_field")
    if event_type is not None and event_type.recurring_occurrences:
        # A recurring type books every occurrence at once and answers with the list.
        bookings = [
            sim.ledger.create(
                replace(parsed, start=parsed.start + timedelta(weeks=week)),
                now=sim.now(),
                reject_past=sim.reject_past,
            )[0]
            for week in range(event_type.recurring_occurrences)
        ]
        return _json(201, {"status": "success", "data": [b.to_calcom() for b in bookings]})
    booking, created = sim.ledger.create(parsed, now=sim.now(), reject_past=sim.reject_past)
    if created:  # the shortcut returning an existing booking writes nothing and sends nothing
        sim.notify(
            "BOOKING_REQUESTED" if booking.status == "pending" else "BOOKING_CREATED", booking
        )
    data = booking.to_calcom()
    if event_type is not None and event_type.seats_per_time_slot:
        data["seatUid"] = f"seat-{booking.uid}"  # a seated create names the attendee's seat
    return _json(201, {"status": "success", "data": data})


async def _slots(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    query = request.query
    try:
        event_type = sim.ledger.event_types.get(int(query.get("eventTypeId", "")))
    except ValueError as e:
        raise bad_request("eventTypeId must be an integer number") from e
    if event_type is None:
        raise SimulatedError(
            404, "NotFoundException", f"Event type with id={query['eventTypeId']} not found"
        )
    start = parse_time(query.get("start"), "start must be a valid ISO 8601 date string")
    end = parse_time(query.get("end"), "end must be a valid ISO 8601 date string")
    zone_name = query.get("timeZone", "UTC")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise bad_request("timeZone must be a valid IANA time zone") from e
    by_date: dict[str, list[dict[str, str]]] = {}
    for slot in free_slots(sim.ledger, event_type, start=start, end=end, now=sim.now()):
        day = slot.astimezone(zone).date().isoformat()
        by_date.setdefault(day, []).append({"start": to_calcom_time(slot)})
    return _json(200, {"status": "success", "data": by_date})


async def _event_type(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    try:
        event_type = sim.ledger.event_types.get(int(request.match_info["id"]))
    except ValueError:
        event_type = None
    if event_type is None:
        raise SimulatedError(
            404, "NotFoundException", f"Event type with id={request.match_info['id']} not found"
        )
    return _json(200, {"status": "success", "data": event_type_output(event_type)})


async def _me(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    return _json(200, {"status": "success", "data": me_output(sim.account)})


async def _find(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    query = parse_find(request.query)
    page, total = sim.ledger.find(query, now=sim.now())
    pages = math.ceil(total / query.take)
    pagination = {
        "totalItems": total,
        "remainingItems": max(0, total - (query.skip + query.take)),
        "returnedItems": len(page),
        "itemsPerPage": query.take,
        "currentPage": query.skip // query.take + 1,
        "totalPages": pages,
        "hasNextPage": query.skip + query.take < total,
        "hasPreviousPage": query.skip > 0,
    }
    data = [booking.to_calcom() for booking in page]
    return _json(200, {"status": "success", "data": data, "pagination": pagination})


async def _get(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    booking = sim.ledger.get(request.match_info["uid"])
    return _json(200, {"status": "success", "data": booking.to_calcom()})


async def _cancel(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    reason = body.get("cancellationReason") if isinstance(body, dict) else None
    if reason is not None and not isinstance(reason, str):
        raise SimulatedError(400, "BadRequestException", "cancellationReason must be a string")
    uid = request.match_info["uid"]
    # The API key belongs to the host, whom Cal.com names as the one who cancelled.
    host = sim.ledger.get(uid).event_type.host.email
    booking = sim.ledger.cancel(uid, reason=reason, now=sim.now(), by=host)
    sim.notify("BOOKING_CANCELLED", booking)
    return _json(200, {"status": "success", "data": booking.to_calcom()})


async def _reschedule(sim: Simulator, request: web.Request, body: Any) -> web.Response:
    fields = body if isinstance(body, dict) else {}
    booking = sim.ledger.reschedule(
        request.match_info["uid"], fields, now=sim.now(), reject_past=sim.reject_past
    )
    sim.notify("BOOKING_RESCHEDULED", booking)
    return _json(201, {"status": "success", "data": booking.to_calcom()})


async def _body(request: web.Request) -> Any:
    """The JSON body, or None when there is none; unreadable JSON is kept as its text."""
    if not request.can_read_body:
        return None
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")


def _bearer(request: web.Request) -> str:
    """The API key of `Authorization: Bearer <key>`, or "" without one."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def _drop(request: web.Request) -> None:
    """Close the connection without an answer, as a crashed proxy would."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def _throttled(sim: Simulator, request: web.Request, retry_after: int | None) -> web.Response:
    response = error_response(
        sim,
        request,
        429,
        "ThrottlerException",
        "CustomThrottlerGuard - Too many requests. Please try again later.",
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    response.headers["X-RateLimit-Remaining-Default"] = "0"
    return response


def error_response(
    sim: Simulator, request: web.Request, status: int, code: str, message: str
) -> web.Response:
    """Cal.com's error envelope."""
    phrase = HTTPStatus(status).phrase
    return _json(
        status,
        {
            "status": "error",
            "timestamp": to_calcom_time(sim.now()),
            "path": request.path,
            "error": {
                "code": code,
                "message": message,
                "details": {"message": message, "error": phrase, "statusCode": status},
            },
        },
    )


def _exception_name(status: int) -> str:
    return HTTPStatus(status).phrase.replace(" ", "") + "Exception"


def _json(status: int, data: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")
