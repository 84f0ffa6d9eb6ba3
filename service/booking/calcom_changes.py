"""What Cal.com tells us happened to bookings after booking: cancels, reschedules, creations.

Cancellations and reschedules are appended and applied to the appointments table in one
transaction (as BookingConfirmed is), so the read model and the log never disagree; a
reschedule moves the appointment to the new uid, keeping one appointment per booking. A created
booking carrying a `call_id` that never went through booking-guard is recorded with an alarm:
it was made behind the guard's back.

The Cal.com webhook (service/api/webhooks_calcom.py) verifies and parses; this module decides
and writes. Each event comes with an id derived from the webhook, so a redelivery appends
nothing and returns no recorded event types.

Webhooks are hints and Cal.com is the truth (DESIGN.md §10): before a change is recorded the
booking is read back (`GET /v2/bookings/{uid}`). A booking Cal.com does not know changes
nothing; one whose status Cal.com does not confirm (a stale delivery) changes nothing; when
Cal.com cannot be asked, the signed webhook is believed and the reconciler corrects any drift.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from events.booking import (
    BookingAccepted,
    BookingCancelled,
    BookingDeclined,
    BookingRescheduled,
    attempt_stream,
)
from events.calcom import (
    CalcomBookingCreatedObserved,
    UnguardedBookingDetected,
    calcom_booking_stream,
)
from events.models import Event, EventMetadata, NewEvent
from events.store import Connection, EventStore, ExpectedVersion
from projections import appointments
from service.calcom.port import CalcomBooking, CalcomClient, CalcomError, CalcomRejected

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
    """The event types a change appended (none: already recorded, or nothing to record), the
    alarm raised, and whether Cal.com denied knowing the booking."""

    types: list[str]
    alarm: UnguardedBookingDetected | None = None
    unknown: bool = False


class _Unreachable:
    """Cal.com could not be asked: believe the signed webhook."""


UNREACHABLE: Final = _Unreachable()


class CalcomChanges:
    """Records Cal.com's booking changes in the ledger and the appointments table."""

    def __init__(
        self, *, pool: asyncpg.Pool, store: EventStore, calcom: CalcomClient | None = None
    ) -> None:
        self._pool = pool
        self._store = store
        # None: no read-back (tests of the ledger side alone).
        self._calcom = calcom

    async def read_back(self, uid: str) -> CalcomBooking | _Unreachable | None:
        """The booking as Cal.com holds it; None when Cal.com does not know it."""
        if self._calcom is None:
            return UNREACHABLE
        try:
            return await self._calcom.get_booking(uid)
        except CalcomRejected as e:
            if e.status == 404:
                return None
            log.warning("Cal.com refused to read booking %s back: %s", uid, e)
            return UNREACHABLE
        except CalcomError as e:
            log.warning("could not read booking %s back from Cal.com: %s", uid, e)
            return UNREACHABLE

    async def on_change(
        self, uid: str, event_id: uuid.UUID, event: BookingCancelled | BookingRescheduled
    ) -> Recorded:
        """A cancellation or reschedule webhook, checked against Cal.com, then recorded."""
        subject = event.new_booking_uid if isinstance(event, BookingRescheduled) else uid
        truth = await self.read_back(subject)
        if truth is None:
            log.warning("Cal.com does not know booking %s: %s ignored", subject, event.type_name)
            return Recorded([], unknown=True)
        if isinstance(truth, CalcomBooking):
            status = (truth.status or "").lower()
            if isinstance(event, BookingCancelled) and status not in ("cancelled", "rejected"):
                log.warning("Cal.com holds %s as %s: cancellation not recorded", uid, status)
                return Recorded([])
            if isinstance(event, BookingRescheduled) and truth.start is not None:
                event = event.model_copy(update={"start": truth.start, "end": truth.end})
        recorded = await self.record_change(uid, event_id, event)
        if isinstance(event, BookingRescheduled) and isinstance(truth, CalcomBooking):
            # The new booking may already be gone: say so too (webhooks overtake each other).
            gone = (truth.status or "").lower() in ("cancelled", "rejected")
            if gone:
                cancelled = BookingCancelled(
                    booking_uid=truth.uid, reason="read back", cancelled_at=event.rescheduled_at
                )
                more = await self.record_change(
                    truth.uid, change_id("BOOKING_CANCELLED", truth.uid), cancelled
                )
                return Recorded(recorded.types + more.types)
        return recorded

    async def on_status(self, uid: str, *, at: datetime, reason: str | None = None) -> Recorded:
        """A webhook saying a booking's status moved (host accepted or declined): record what
        Cal.com now holds, if it differs from the appointment's state."""
        truth = await self.read_back(uid)
        if truth is None:
            return Recorded([], unknown=True)
        if not isinstance(truth, CalcomBooking):
            return Recorded([])
        status = (truth.status or "").lower()
        row = await appointments.by_booking_uid(self._pool, uid)
        implied = {"accepted": "booked", "rejected": "declined", "cancelled": "cancelled"}
        if row is None or row["status"] == implied.get(status, row["status"]):
            # Not ours, or already as Cal.com holds it: nothing to record.
            return Recorded([])
        event: BookingAccepted | BookingDeclined | BookingCancelled
        if status == "accepted":
            event = BookingAccepted(booking_uid=uid, accepted_at=at)
        elif status == "rejected":
            event = BookingDeclined(booking_uid=uid, reason=reason, declined_at=at)
        elif status == "cancelled":
            event = BookingCancelled(booking_uid=uid, reason=reason, cancelled_at=at)
        else:
            return Recorded([])
        return await self.record_fact(uid, change_id(status, uid), event)

    async def record_fact(
        self,
        uid: str,
        event_id: uuid.UUID,
        event: BookingAccepted | BookingDeclined | BookingCancelled,
    ) -> Recorded:
        """Append a status Cal.com holds for `uid` and apply it to the appointment."""
        appended = await record_on_booking(
            self._pool, self._store, uid, event, event_id=event_id, metadata=_METADATA
        )
        return Recorded([event.type_name] if appended else [])

    async def record_change(
        self, uid: str, event_id: uuid.UUID, event: BookingCancelled | BookingRescheduled
    ) -> Recorded:
        """Append a cancellation or reschedule of booking `uid` and apply it to its appointment.

        Raises RescheduleConflict, writing nothing, when the new uid already holds another
        appointment.
        """

        async def refuse_a_second_holder(conn: Connection) -> None:
            if isinstance(event, BookingRescheduled) and await _both_held(conn, event):
                # Applying it would break the unique index here and in every replay after:
                # refuse it whole (the transaction rolls the append back), let a person look.
                raise RescheduleConflict(
                    f"booking {event.booking_uid} moved to {event.new_booking_uid}, which"
                    " already holds another appointment"
                )

        appended = await record_on_booking(
            self._pool,
            self._store,
            uid,
            event,
            event_id=event_id,
            metadata=_METADATA,
            before_apply=refuse_a_second_holder,
        )
        return Recorded([event.type_name] if appended else [])

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


async def record_on_booking(
    pool: asyncpg.Pool,
    store: EventStore,
    uid: str,
    event: Event,
    *,
    event_id: uuid.UUID,
    metadata: EventMetadata,
    before_apply: Callable[[Connection], Awaitable[None]] | None = None,
) -> bool:
    """Append what is known of booking `uid` to its stream and apply it to the appointments, in
    one transaction; False (nothing written) when an event with this id is already recorded.

    The one write of a booking's news, whoever learns it: a webhook, the reconciler, orphans.
    """
    async with pool.acquire() as conn, conn.transaction():
        version = await store.append(
            calcom_booking_stream(uid),
            [NewEvent(event, event_id=event_id, metadata=metadata)],
            expected_version=ExpectedVersion.ANY,
            connection=conn,
        )
        if version == -1:
            return False
        if before_apply is not None:
            await before_apply(conn)
        await appointments.apply(conn, event)
    store.wake_subscribers()
    return True


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
