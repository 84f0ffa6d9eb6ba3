"""`POST /v1/webhooks/calcom`: Cal.com tells the ledger what happened to bookings after booking.

This handler verifies the signature and parses the body; service/booking/calcom_changes.py
decides what each trigger changes and writes it.
"""

from __future__ import annotations

import logging
from typing import Final

import orjson
from aiohttp import web

from events.errors import EventIdConflict
from service.api.bodies import WEBHOOK_MAX_BODY_BYTES, parse_json, read_signed
from service.api.calcom_webhook_models import (
    CREATED,
    HANDLED_TRIGGERS,
    REJECTED,
    REQUESTED,
    CalcomBookingWebhook,
    CalcomWebhook,
    booking_change,
    created_observed,
    event_id,
)
from service.api.errors import error_response
from service.api.keys import CALCOM_CHANGES, METRICS, SETTINGS
from service.api.signatures import SignatureInvalid, verify_calcom
from service.booking.calcom_changes import RescheduleConflict

log = logging.getLogger(__name__)

PATH: Final = "/v1/webhooks/calcom"


def _answer(status: str, *, trigger: str, recorded: list[str] | None = None) -> web.Response:
    body = {"status": status, "trigger": trigger, "recorded": recorded or []}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def calcom_webhook(request: web.Request) -> web.StreamResponse:
    """POST /v1/webhooks/calcom"""
    secret = request.app[SETTINGS].calcom_webhook_secret
    if secret is None:
        return error_response(503, "webhook_not_configured", "CALCOM_WEBHOOK_SECRET is not set")
    raw = await read_signed(request, WEBHOOK_MAX_BODY_BYTES)
    try:
        verify_calcom(raw, request.headers.get("X-Cal-Signature-256"), secret.get_secret_value())
    except SignatureInvalid as e:
        return error_response(401, "invalid_signature", str(e))
    body = parse_json(raw)
    trigger = CalcomWebhook.model_validate(body).triggerEvent
    if trigger not in HANDLED_TRIGGERS:
        # PING, MEETING_ENDED, BOOKING_REQUESTED, ...: acknowledged, not recorded.
        log.info("Cal.com %s webhook ignored", trigger)
        response = _answer("ignored", trigger=trigger)
        response.set_status(202)
        return response
    webhook = CalcomBookingWebhook.model_validate(body)
    changes = request.app[CALCOM_CHANGES]
    try:
        payload = webhook.payload
        if trigger in (CREATED, REQUESTED):
            observed = created_observed(webhook)
            uid = observed.booking_uid
            done = await changes.record_created(
                observed, event_id=event_id(trigger, uid), alarm_id=event_id("unguarded", uid)
            )
            if done.alarm is not None:
                request.app[METRICS].observe_unguarded_booking()
            recorded = done.types
            if trigger == CREATED and (payload.status or "").upper() == "ACCEPTED":
                # A host accepting a pending booking: Cal.com sends BOOKING_CREATED again.
                accepted = await changes.on_status(uid, at=webhook.createdAt)
                recorded = recorded + accepted.types
        elif trigger == REJECTED:
            done = await changes.on_status(
                payload.uid, at=webhook.createdAt, reason=payload.rejectionReason
            )
            recorded = done.types
        else:
            done = await changes.on_change(*booking_change(webhook))
            if done.unknown:
                return _answer("unknown_booking", trigger=trigger)
            recorded = done.types
    except RescheduleConflict as e:
        log.error("Cal.com %s refused: %s", trigger, e)
        return error_response(409, "reschedule_conflict", str(e))
    except EventIdConflict:
        # The same webhook came back with other content; the ledger keeps the first.
        log.warning("Cal.com %s of %s redelivered with other content", trigger, webhook.payload.uid)
        recorded = []
    return _answer(
        "recorded" if recorded else "already_recorded", trigger=trigger, recorded=recorded
    )


def add_calcom_routes(app: web.Application) -> None:
    app.router.add_post(PATH, calcom_webhook)
