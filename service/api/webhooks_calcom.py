"""`POST /v1/webhooks/calcom`: Cal.com tells the ledger what happened to bookings after booking.

Cancellations and reschedules are appended and applied to the appointments table in one
transaction (as BookingConfirmed is), so the read model and the log never disagree; a
reschedule moves the appointment to the new uid, keeping one appointment per booking. A created
booking carrying a `call_id` that never went through booking-guard is recorded and counted:
it was made behind the guard's back.
"""

from __future__ import annotations

import logging
from typing import Final

import orjson
from aiohttp import web

from events.booking import BookingRescheduled, attempt_stream
from events.calcom import calcom_booking_stream
from events.errors import EventIdConflict
from events.models import EventMetadata, NewEvent
from events.store import Connection, ExpectedVersion
from projections import appointments
from service.api.bodies import parse_json
from service.api.calcom_webhook_models import (
    CREATED,
    HANDLED_TRIGGERS,
    CalcomBookingWebhook,
    CalcomWebhook,
    booking_change,
    created_observed,
    event_id,
    unguarded,
)
from service.api.errors import error_response
from service.api.keys import METRICS, POOL, SETTINGS, STORE
from service.api.signatures import SignatureInvalid, verify_calcom
from service.api.webhooks_retell import WEBHOOK_MAX_BODY_BYTES, read_signed

log = logging.getLogger(__name__)

PATH: Final = "/v1/webhooks/calcom"
_METADATA: Final = EventMetadata(producer="calcom-webhook")


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
    try:
        if trigger == CREATED:
            recorded = await _record_created(request, webhook)
        else:
            recorded = await _record_change(request, webhook)
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


async def _record_change(request: web.Request, webhook: CalcomBookingWebhook) -> list[str]:
    uid, new_id, event = booking_change(webhook)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        version = await request.app[STORE].append(
            calcom_booking_stream(uid),
            [NewEvent(event, event_id=new_id, metadata=_METADATA)],
            expected_version=ExpectedVersion.ANY,
            connection=conn,
        )
        if version == -1:
            return []
        if isinstance(event, BookingRescheduled) and await _both_held(conn, event):
            # Applying it would break the unique index here and in every replay after: refuse
            # it whole (the transaction rolls the append back) and let a person look.
            raise RescheduleConflict(
                f"booking {event.booking_uid} moved to {event.new_booking_uid}, which already"
                " holds another appointment"
            )
        await appointments.apply(conn, event)
    request.app[STORE].wake_subscribers()
    return [event.type_name]


class RescheduleConflict(Exception):
    """A reschedule onto a booking uid that already holds another appointment (HTTP 409)."""


async def _both_held(conn: Connection, event: BookingRescheduled) -> bool:
    old = await appointments.by_booking_uid(conn, event.booking_uid)
    new = await appointments.by_booking_uid(conn, event.new_booking_uid)
    return old is not None and new is not None


async def _record_created(request: web.Request, webhook: CalcomBookingWebhook) -> list[str]:
    observed = created_observed(webhook)
    uid = observed.booking_uid
    # Decided before the transaction so that it holds one connection, not two. An attempt of
    # ours that is still in flight counts as ours: its BookingRequested committed before it
    # called Cal.com, so the webhook cannot overtake it.
    ours = await appointments.by_booking_uid(request.app[POOL], uid) is not None or (
        observed.attempt_id is not None
        and await request.app[STORE].stream_version(attempt_stream(observed.attempt_id)) > 0
    )
    alarm = None if ours or observed.call_id is None else unguarded(observed)
    stream = calcom_booking_stream(uid)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        version = await request.app[STORE].append(
            stream,
            [NewEvent(observed, event_id=event_id(CREATED, uid), metadata=_METADATA)],
            expected_version=ExpectedVersion.ANY,
            connection=conn,
        )
        if version == -1:
            return []
        if alarm is not None:
            await request.app[STORE].append(
                stream,
                [NewEvent(alarm, event_id=event_id("unguarded", uid), metadata=_METADATA)],
                expected_version=version,
                connection=conn,
            )
    request.app[STORE].wake_subscribers()
    if alarm is None:
        return [observed.type_name]
    request.app[METRICS].observe_unguarded_booking()
    log.error("Cal.com booking %s of call %s was made without booking-guard", uid, alarm.call_id)
    return [observed.type_name, alarm.type_name]


def add_calcom_routes(app: web.Application) -> None:
    app.router.add_post(PATH, calcom_webhook)
