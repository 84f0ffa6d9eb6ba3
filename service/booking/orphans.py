"""Bookings of ours that nobody holds: cancelled in Cal.com, or alerted (DESIGN.md §10).

A booking is ours when its `metadata.attempt_id` names an attempt in this ledger. When no
appointment holds it — a guard refused it, or every answer was lost and the producer never came
back within `BOOKING_GUARD_ORPHAN_GRACE_SECONDS` — it blocks the host and an attendee waits for
it, so it is cancelled with a reason (`OrphanBookingCancelled`), or with the `alert` policy left
live and recorded (`OrphanBookingDetected`) for a person to decide. A booking with our kind of
metadata whose attempt we do not know is never cancelled: another deployment may own it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Final, Literal

import asyncpg

from events.booking import OrphanBookingCancelled, OrphanBookingDetected
from events.models import EventMetadata
from events.store import EventStore
from service.booking.calcom_changes import record_on_booking
from service.booking.clock import Clock
from service.calcom.port import CalcomBooking, CalcomClient, CalcomError

log = logging.getLogger(__name__)

OrphanPolicy = Literal["cancel", "alert"]
OrphanObserver = Callable[[str], None]
_METADATA: Final = EventMetadata(producer="booking-guard-orphans")
_IDS: Final = uuid.UUID("2b7f0d8e-5c1a-4f63-9d0e-6a3c9b1f7e25")


class Orphans:
    """Cancels (or alerts on) bookings of ours that no appointment holds."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        store: EventStore,
        calcom: CalcomClient,
        clock: Clock,
        policy: OrphanPolicy = "cancel",
        observer: OrphanObserver | None = None,
    ) -> None:
        self._pool = pool
        self._store = store
        self._calcom = calcom
        self._clock = clock
        self.policy: OrphanPolicy = policy
        # Told "cancelled" or "alerted" for each orphan handled (metrics).
        self._observer = observer

    async def cancel_refused(
        self, attempt_id: uuid.UUID, call_id: str, booking: CalcomBooking, *, reason: str | None
    ) -> bool:
        """A booking we made and a guard refused: never left live. False if Cal.com failed."""
        return await self.handle(
            attempt_id, call_id, booking, reason=f"booking-guard refused it: {reason}"
        )

    async def handle(
        self, attempt_id: uuid.UUID, call_id: str, booking: CalcomBooking, *, reason: str
    ) -> bool:
        """Cancel (or, under `alert`, record) one orphan; False when Cal.com could not be told."""
        if self.policy == "alert":
            event: OrphanBookingCancelled | OrphanBookingDetected = OrphanBookingDetected(
                booking_uid=booking.uid,
                attempt_id=attempt_id,
                call_id=call_id,
                reason=reason,
                detected_at=self._clock.now(),
            )
            log.error(
                "orphan booking %s of call %s left live (policy alert): %s",
                booking.uid,
                call_id,
                reason,
            )
        else:
            try:
                await self._calcom.cancel_booking(booking.uid, reason=reason[:500])
            except CalcomError as e:
                log.warning("could not cancel orphan booking %s: %s", booking.uid, e)
                return False
            event = OrphanBookingCancelled(
                booking_uid=booking.uid,
                attempt_id=attempt_id,
                call_id=call_id,
                reason=reason,
                cancelled_at=self._clock.now(),
            )
            log.warning("cancelled orphan booking %s of call %s: %s", booking.uid, call_id, reason)
        await self._record(event)
        if self._observer is not None:
            self._observer("alerted" if self.policy == "alert" else "cancelled")
        return True

    async def _record(self, event: OrphanBookingCancelled | OrphanBookingDetected) -> None:
        # One event per booking and kind: a second pass over the same orphan appends nothing.
        event_id = uuid.uuid5(_IDS, f"{event.type_name}\x00{event.booking_uid}")
        await record_on_booking(
            self._pool,
            self._store,
            event.booking_uid,
            event,
            event_id=event_id,
            metadata=_METADATA,
        )
