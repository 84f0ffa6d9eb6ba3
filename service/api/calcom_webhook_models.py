"""Cal.com's webhook body, and the events each booking trigger becomes.

Every event is built from the body alone (the trigger's `createdAt`, never our clock) and gets an
id derived from the trigger and the booking uids, so a redelivered webhook is the same event and
its append a no-op.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from events.booking import BookingCancelled, BookingRescheduled
from events.calcom import CalcomBookingCreatedObserved
from service.booking.calcom_changes import change_id
from service.booking.field_types import UpstreamInt
from service.booking.instants import Instant

CREATED: Final = "BOOKING_CREATED"
CANCELLED: Final = "BOOKING_CANCELLED"
RESCHEDULED: Final = "BOOKING_RESCHEDULED"
REQUESTED: Final = "BOOKING_REQUESTED"
REJECTED: Final = "BOOKING_REJECTED"
# Cal.com sends BOOKING_REQUESTED for a booking awaiting the host, BOOKING_CREATED (status
# ACCEPTED, with only {videoCallUrl} as metadata) when the host accepts it — read in Cal.com's
# packages/features/bookings/lib/handleConfirmation.ts (commit 002874d2): after setting the
# booking ACCEPTED it calls sendPayload(…, WebhookTriggerEvents.BOOKING_CREATED, …) with
# `status: "ACCEPTED"` and `metadata: { videoCallUrl }` — and BOOKING_REJECTED when the host
# declines (shared/contracts/README.md, "Host confirmation"). Match on the uid, never metadata.
HANDLED_TRIGGERS: Final = frozenset({CREATED, CANCELLED, RESCHEDULED, REQUESTED, REJECTED})

BookingUid = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
# Free text from people: cut rather than refused, or a long reason would lose the cancellation.
Reason = Annotated[str, BeforeValidator(lambda v: v[:500] if isinstance(v, str) else v)]


class CalcomWebhook(BaseModel):
    """The envelope every Cal.com webhook shares."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    triggerEvent: str = Field(max_length=64)
    createdAt: Instant
    payload: dict[str, Any]


class CalcomBookingPayload(BaseModel):
    """The fields of a booking trigger's payload that booking-guard reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uid: BookingUid
    bookingId: UpstreamInt | None = Field(None, ge=0, lt=2**63)
    eventTypeId: UpstreamInt | None = Field(None, ge=0, lt=2**63)
    startTime: Instant
    endTime: Instant | None = None
    status: Annotated[str, Field(max_length=32)] | None = None
    metadata: dict[str, Any] | None = None
    rescheduleUid: BookingUid | None = None
    cancellationReason: Reason | None = None
    rejectionReason: Reason | None = None

    def metadata_text(self, key: str) -> str | None:
        """A metadata value booking-guard set (`call_id`, `attempt_id`), if it looks like one."""
        value = (self.metadata or {}).get(key)
        return value if isinstance(value, str) and 0 < len(value) <= 128 else None

    def attempt_id(self) -> uuid.UUID | None:
        """The attempt that made this booking, when booking-guard made it."""
        text = self.metadata_text("attempt_id")
        try:
            return uuid.UUID(text) if text else None
        except ValueError:
            return None


class CalcomBookingWebhook(CalcomWebhook):
    """A booking trigger: the envelope with its payload read."""

    payload: CalcomBookingPayload  # type: ignore[assignment]

    @model_validator(mode="after")
    def _reschedule_names_its_origin(self) -> CalcomBookingWebhook:
        if self.triggerEvent == RESCHEDULED and self.payload.rescheduleUid is None:
            raise ValueError("a BOOKING_RESCHEDULED payload needs rescheduleUid")
        return self


def event_id(*parts: str) -> uuid.UUID:
    """The id of the event a webhook becomes: the same webhook, the same id."""
    return change_id(*parts)


def booking_change(
    webhook: CalcomBookingWebhook,
) -> tuple[str, uuid.UUID, BookingCancelled | BookingRescheduled]:
    """A cancellation or reschedule as (stream's booking uid, event id, event)."""
    p = webhook.payload
    call_id = p.metadata_text("call_id")
    if webhook.triggerEvent == CANCELLED:
        cancelled = BookingCancelled(
            booking_uid=p.uid,
            call_id=call_id,
            reason=p.cancellationReason,
            cancelled_at=webhook.createdAt,
        )
        return p.uid, event_id(CANCELLED, p.uid), cancelled
    assert p.rescheduleUid is not None
    rescheduled = BookingRescheduled(
        booking_uid=p.rescheduleUid,
        new_booking_uid=p.uid,
        call_id=call_id,
        start=p.startTime,
        end=p.endTime,
        rescheduled_at=webhook.createdAt,
    )
    return p.rescheduleUid, event_id(RESCHEDULED, p.rescheduleUid, p.uid), rescheduled


def created_observed(webhook: CalcomBookingWebhook) -> CalcomBookingCreatedObserved:
    """BOOKING_CREATED as the ledger keeps it."""
    p = webhook.payload
    return CalcomBookingCreatedObserved(
        booking_uid=p.uid,
        booking_id=p.bookingId,
        call_id=p.metadata_text("call_id"),
        attempt_id=p.attempt_id(),
        event_type_id=p.eventTypeId,
        start=p.startTime,
        end=p.endTime,
        status=p.status,
        observed_at=webhook.createdAt,
    )
