"""What Cal.com tells us happened to bookings after booking: cancels, reschedules, creations.

Cancellations and reschedules are appended and applied to the appointments table in one
transaction (as BookingConfirmed is), so the read model and the log never disagree; a
reschedule moves the appointment to the new uid, keeping one appointment per booking. A created
booking carrying a `call_id` that never went through booking-guard is recorded with an alarm:
it was made behind the guard's back.

The Cal.com webhook (service/api/webhooks_calcom.py) verifies and parses; this module decides
and writes. Each event comes with an id derived from the webhook, so a redelivery appends
nothing and returns no recorded event types.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Final

import asyncpg

from events.booking import BookingCancelled, BookingRescheduled, attempt_stream
from events.calcom import (
    CalcomBookingCreatedObserved,
    UnguardedBookingDetected,
    calcom_booking_stream,
)
from events.models import EventMetadata, NewEvent
from events.store import Connection, EventStore, ExpectedVersion
from projections import appointments

log = logging.getLogger(__name__)

_METADATA: Final = EventMetadata(producer="calcom-webhook")
_CHANGE_IDS: Final = uuid.UUID("0f8a1c55-1c0e-5a3f-8d0b-7f3e2b9c4a21")


def change_id(*parts: str) -> uuid.UUID:
    """The id of the event a change becomes (trigger and uids): the same change, the same id,
    whoever sees it first — the webhook or the reconciler."""
    return uuid.uuid5(_CHANGE_IDS, "\x00".join(parts))


class RescheduleConflict(Exception):
    """A reschedule onto a booking uid that already holds another appointment."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """The event types a change appended (none: already recorded), and the alarm raised."""

    types: list[str]
    alarm: UnguardedBookingDetected | None = None


class CalcomChanges:
    """Records Cal.com's booking changes in the ledger and the appointments table."""

    def __init__(self, *, pool: asyncpg.Pool, store: EventStore) -> None:
        self._pool = pool
        self._store = store

    async def record_change(
        self, uid: str, event_id: uuid.UUID, event: BookingCancelled | BookingRescheduled
    ) -> Recorded:
        """Append a cancellation or reschedule of booking `uid` and apply it to its appointment.

        Raises RescheduleConflict, writing nothing, when the new uid already holds another
        appointment.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            version = await self._store.append(
                calcom_booking_stream(uid),
                [NewEvent(event, event_id=event_id, metadata=_METADATA)],
                expected_version=ExpectedVersion.ANY,
                connection=conn,
            )
            if version == -1:
                return Recorded([])
            if isinstance(event, BookingRescheduled) and await _both_held(conn, event):
                # Applying it would break the unique index here and in every replay after:
                # refuse it whole (the transaction rolls the append back), let a person look.
                raise RescheduleConflict(
                    f"booking {event.booking_uid} moved to {event.new_booking_uid}, which"
                    " already holds another appointment"
                )
            await appointments.apply(conn, event)
        self._store.wake_subscribers()
        return Recorded([event.type_name])

    async def record_created(
        self, observed: CalcomBookingCreatedObserved, *, event_id: uuid.UUID, alarm_id: uuid.UUID
    ) -> Recorded:
        """Append a creation Cal.com reported, with an alarm when no attempt of ours made it."""
        uid = observed.booking_uid
        # Decided before the transaction so that it holds one connection, not two. An attempt
        # of ours that is still in flight counts as ours: its BookingRequested committed before
        # it called Cal.com, so the webhook cannot overtake it.
        ours = await appointments.by_booking_uid(self._pool, uid) is not None or (
            observed.attempt_id is not None
            and await self._store.stream_version(attempt_stream(observed.attempt_id)) > 0
        )
        alarm = None if ours or observed.call_id is None else unguarded(observed)
        stream = calcom_booking_stream(uid)
        async with self._pool.acquire() as conn, conn.transaction():
            version = await self._store.append(
                stream,
                [NewEvent(observed, event_id=event_id, metadata=_METADATA)],
                expected_version=ExpectedVersion.ANY,
                connection=conn,
            )
            if version == -1:
                return Recorded([])
            if alarm is not None:
                await self._store.append(
                    stream,
                    [NewEvent(alarm, event_id=alarm_id, metadata=_METADATA)],
                    expected_version=version,
                    connection=conn,
                )
        self._store.wake_subscribers()
        if alarm is None:
            return Recorded([observed.type_name])
        log.error(
            "Cal.com booking %s of call %s was made without booking-guard", uid, alarm.call_id
        )
        return Recorded([observed.type_name, alarm.type_name], alarm)


def unguarded(observed: CalcomBookingCreatedObserved) -> UnguardedBookingDetected:
    """The alarm for a booking whose call never went through booking-guard."""
    assert observed.call_id is not None
    return UnguardedBookingDetected(
        booking_uid=observed.booking_uid,
        call_id=observed.call_id,
        attempt_id=observed.attempt_id,
        start=observed.start,
        detected_at=observed.observed_at,
    )


async def _both_held(conn: Connection, event: BookingRescheduled) -> bool:
    old = await appointments.by_booking_uid(conn, event.booking_uid)
    new = await appointments.by_booking_uid(conn, event.new_booking_uid)
    return old is not None and new is not None
