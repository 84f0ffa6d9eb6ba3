"""`POST /v1/webhooks/retell`: Retell's booking function calls and its call lifecycle webhooks.

Both come signed with `x-retell-signature` (service/api/signatures.py). A function call answers 200
with a sentence for the agent, whatever the booking's outcome, because Retell treats any other
status as a failure to retry; lifecycle events are appended to the call's stream and answered 204.
"""

from __future__ import annotations

import logging
import uuid
from typing import Final

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from events.calls import (
    RetellCallAnalyzed,
    RetellCallEnded,
    RetellCallEvent,
    RetellCallStarted,
    call_stream,
)
from events.errors import EventIdConflict
from events.models import EventMetadata, NewEvent
from events.store import ExpectedVersion
from service.api.bodies import WEBHOOK_MAX_BODY_BYTES, parse_json, read_signed
from service.api.errors import error_response
from service.api.keys import CLOCK, RETELL_AGENTS, SETTINGS, SLOT_FINDER, STORE, WORKFLOW
from service.api.retell_agents import ServiceRefused
from service.api.retell_availability import AVAILABILITY_FUNCTION, answer_availability_call
from service.api.retell_booking import (
    BOOKING_FUNCTIONS,
    RetellCall,
    RetellFunctionCall,
    answer_booking_call,
)
from service.api.signatures import SignatureInvalid, verify_retell

log = logging.getLogger(__name__)

PATH: Final = "/v1/webhooks/retell"
MAX_CALL_ANALYSIS_BYTES: Final = 16 * 1024
_EVENT_IDS: Final = uuid.UUID("6c0b4c39-4a51-5d3e-9a52-3c1b0f6c1e11")
LIFECYCLE: Final[dict[str, type[RetellCallEvent]]] = {
    "call_started": RetellCallStarted,
    "call_ended": RetellCallEnded,
    "call_analyzed": RetellCallAnalyzed,
}


class RetellLifecycle(BaseModel):
    """A call lifecycle webhook: which event, and the call as Retell knows it then."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event: str = Field(max_length=64)
    call: RetellCall


async def retell_webhook(request: web.Request) -> web.StreamResponse:
    """POST /v1/webhooks/retell"""
    key = request.app[SETTINGS].retell_api_key
    if key is None:
        return error_response(503, "webhook_not_configured", "RETELL_API_KEY is not set")
    raw = await read_signed(request, WEBHOOK_MAX_BODY_BYTES)
    try:
        verify_retell(
            raw,
            request.headers.get("x-retell-signature"),
            key.get_secret_value(),
            now=request.app[CLOCK].now(),
        )
    except SignatureInvalid as e:
        return error_response(401, "invalid_signature", str(e))
    body = parse_json(raw)
    if isinstance(body, dict) and "event" in body:
        return await _record_lifecycle(request, RetellLifecycle.model_validate(body))
    if isinstance(body, dict) and "name" in body:
        return await _function_call(request, RetellFunctionCall.model_validate(body))
    return error_response(
        422,
        "invalid_request",
        [
            {
                "field": "body",
                "message": "expected a function call {name, call, args}"
                " or a lifecycle webhook {event, call}",
            }
        ],
    )


async def _function_call(request: web.Request, function_call: RetellFunctionCall) -> web.Response:
    known = BOOKING_FUNCTIONS | {AVAILABILITY_FUNCTION}
    if function_call.name not in known:
        return error_response(
            422,
            "unknown_function",
            f"function {function_call.name!r} is not one of {sorted(known)}",
        )
    call = function_call.call
    try:
        args = request.app[RETELL_AGENTS].resolve(call.agent_id, function_call.args)
    except ServiceRefused as e:
        answer: dict[str, object] = {
            "result": "invalid",
            "message": f"{e.message[0].upper()}{e.message[1:]}. "
            "Please check with the caller and try again.",
            "invalid_args": [e.field],
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json")
    slots = request.app[SLOT_FINDER]
    if function_call.name == AVAILABILITY_FUNCTION:
        answer = await answer_availability_call(slots, args)
    else:
        answer = await answer_booking_call(request.app[WORKFLOW], slots, call, args)
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


def lifecycle_event(webhook: RetellLifecycle) -> RetellCallEvent | None:
    """The event a lifecycle webhook records; None for events booking-guard does not keep."""
    cls = LIFECYCLE.get(webhook.event)
    if cls is None:
        return None
    fields = webhook.call.model_dump(include=set(cls.model_fields))
    analysis = fields.get("call_analysis")
    if analysis is not None and len(orjson.dumps(analysis)) > MAX_CALL_ANALYSIS_BYTES:
        fields["call_analysis"] = {"omitted": f"larger than {MAX_CALL_ANALYSIS_BYTES} bytes"}
    return cls.model_validate(fields)


def lifecycle_event_id(call_id: str, event: str) -> uuid.UUID:
    """One id per call and lifecycle event: a redelivery appends nothing."""
    return uuid.uuid5(_EVENT_IDS, f"{call_id}\x00{event}")


async def _record_lifecycle(request: web.Request, webhook: RetellLifecycle) -> web.Response:
    event = lifecycle_event(webhook)
    if event is None:
        log.info("Retell %s webhook ignored: not a recorded event", webhook.event)
        return web.Response(status=204)
    call_id = webhook.call.call_id
    new = NewEvent(
        event,
        event_id=lifecycle_event_id(call_id, webhook.event),
        metadata=EventMetadata(correlation_id=call_id, producer="retell-webhook"),
    )
    try:
        await request.app[STORE].append(
            call_stream(call_id), [new], expected_version=ExpectedVersion.ANY
        )
    except EventIdConflict:
        # Retell sent this event again with other content; the ledger keeps the first.
        log.warning("Retell %s of call %s redelivered with other content", webhook.event, call_id)
    return web.Response(status=204)


def add_retell_routes(app: web.Application) -> None:
    app.router.add_post(PATH, retell_webhook)
