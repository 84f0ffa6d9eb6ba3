"""HTTP routes of the booking API: thin, they parse and call the workflow."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from projections import appointments
from service.api.bodies import parse_json, read_body
from service.api.errors import error_response, validation_detail
from service.api.keys import POOL, SLOT_FINDER, WORKFLOW
from service.api.outcomes import http_status
from service.api.respond_async import prefers_async
from service.api.respond_async import submit as submit_async
from service.api.slots import alternatives_for
from service.booking.instants import Instant, check_representable
from service.booking.models import Appointment, BookingRequest

MAX_IDEMPOTENCY_KEY_LENGTH = 255


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 4xx naming what is wrong with it."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(reason="send the body as application/json")
    return parse_json(await read_body(request))


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type="application/json"
    )


async def create_attempt(request: web.Request) -> web.Response:
    """POST /v1/booking-attempts"""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and key.isprintable()):
        return error_response(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} printable characters",
        )
    body = BookingRequest.model_validate(await read_json(request))
    if prefers_async(request):
        accepted = await submit_async(request, request.app[WORKFLOW], body, idempotency_key=key)
        if isinstance(accepted, web.Response):
            return accepted
        result = accepted
    else:
        result = await request.app[WORKFLOW].book(
            body, idempotency_key=key, correlation_id=request.headers.get("X-Correlation-Id")
        )
    outcome = result.outcome
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    status = http_status(outcome)
    if outcome.status == "failed" and outcome.retryable:
        headers["Retry-After"] = str(_retry_after(outcome.detail))
    answer = outcome.body()
    if outcome.status == "rejected":
        answer["alternatives"] = await alternatives_for(
            request.app[SLOT_FINDER], body.event_type_id, body.start
        )
    return json_response(answer, status=status, headers=headers)


async def get_attempt(request: web.Request) -> web.Response:
    """GET /v1/booking-attempts/{attempt_id}"""
    attempt_id = _uuid(request.match_info["attempt_id"], "attempt_id")
    outcome = await request.app[WORKFLOW].outcome_of(attempt_id)
    if outcome is None:
        return error_response(404, "not_found", f"no booking attempt {attempt_id}")
    return json_response(outcome.body())


class AppointmentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    call_id: str | None = Field(None, max_length=128, pattern=r"^[^\x00-\x1f]*$")
    start_from: Instant | None = Field(None, alias="from")
    start_to: Instant | None = Field(None, alias="to")
    limit: int = Field(100, ge=1, le=1000)
    after: str | None = None


async def list_appointments(request: web.Request) -> web.Response:
    """GET /v1/appointments?call_id=&from=&to=&limit=&after="""
    try:
        query = AppointmentQuery.model_validate(dict(request.query))
    except ValidationError as e:
        return error_response(422, "invalid_query", validation_detail(e))
    after = _parse_after(query.after) if query.after else None
    rows = await appointments.search(
        request.app[POOL],
        call_id=query.call_id,
        start_from=query.start_from,
        start_to=query.start_to,
        after=after,
        limit=query.limit,
    )
    items = [_appointment(row) for row in rows]
    next_cursor = None
    if len(rows) == query.limit:
        last = rows[-1]
        next_cursor = f"{last['start_at'].isoformat()}|{last['appointment_id']}"
    return json_response({"appointments": items, "next": next_cursor})


async def get_appointment(request: web.Request) -> web.Response:
    """GET /v1/appointments/{appointment_id}"""
    appointment_id = _uuid(request.match_info["appointment_id"], "appointment_id")
    row = await appointments.get(request.app[POOL], appointment_id)
    if row is None:
        return error_response(404, "not_found", f"no appointment {appointment_id}")
    return json_response(_appointment(row))


def _appointment(row: dict[str, Any]) -> dict[str, Any]:
    model = Appointment.model_validate({**row, "start": row["start_at"], "end": row["end_at"]})
    return model.model_dump(mode="json")


def _retry_after(detail: Any) -> int:
    """Cal.com's own reset when the failure carries one (a rate limit), else 5 s."""
    wait = detail.get("retry_after_seconds") if isinstance(detail, dict) else None
    return wait if isinstance(wait, int) and wait > 0 else 5


def _uuid(text: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise web.HTTPNotFound(reason=f"{name} must be a UUID, got {text[:80]!r}") from None


def _parse_after(text: str) -> tuple[datetime, uuid.UUID]:
    start, _, appointment_id = text.partition("|")
    try:
        moment = datetime.fromisoformat(start)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time needs an offset")
        return check_representable(moment), uuid.UUID(appointment_id)
    except ValueError:
        raise web.HTTPUnprocessableEntity(reason="after must be a `next` cursor") from None


def add_booking_routes(app: web.Application) -> None:
    app.router.add_post("/v1/booking-attempts", create_attempt)
    app.router.add_get("/v1/booking-attempts/{attempt_id}", get_attempt)
    app.router.add_get("/v1/appointments", list_appointments)
    app.router.add_get("/v1/appointments/{appointment_id}", get_appointment)
