"""Cal.com as the second ledger: find bookings of ours that nobody holds, and settle them.

Two kinds of work (DESIGN.md §10):

- **The queue.** A failure that may have written (a create that timed out, lost its answer or met
  a 5xx) leaves its idempotency key open with `reconcile_after` = failure + the orphan grace. Until
  then a producer's retry with the key finds the booking and is told of it. Once due, any
  process's recovery loop takes the key (`FOR UPDATE SKIP LOCKED`, with a lease), looks the
  attempts' booking up in Cal.com, and cancels it as an orphan (policy `cancel`) or records it
  (`alert`); nothing found means nothing was written.
- **The window** (`booking-guard reconcile`): every booking Cal.com lists in a time window is
  compared with the ledger — in sync; an orphan (ours, no appointment, attempt not in flight);
  status drift (the appointment says booked, Cal.com says cancelled: applied as Cal.com says);
  made around the guard (our kind of metadata, an attempt we do not know).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final, Literal

import asyncpg

from events.booking import (
    BookingAccepted,
    BookingCancelled,
    BookingDeclined,
    BookingRequested,
    attempt_stream,
)
from events.calcom import UnguardedBookingDetected
from events.models import Event, EventMetadata
from events.store import EventStore
from projections import appointments
from service.booking import idempotency
from service.booking.calcom_changes import change_id, record_on_booking
from service.booking.clock import Clock
from service.booking.guards import LIVE_STATUSES, attempt_of, is_live, made_by
from service.booking.orphans import Orphans
from service.calcom.port import CalcomBooking, CalcomClient

log = logging.getLogger(__name__)

LEASE: Final = timedelta(seconds=60)
# The periodic pass looks at the bookings Cal.com created in the last day.
WINDOW: Final = timedelta(hours=24)
# A session lock (no transaction is held open across Cal.com's answers): one process a pass.
_TRY_LOCK: Final = "SELECT pg_try_advisory_lock(hashtextextended('bg-reconcile', 0))"
_UNLOCK: Final = "SELECT pg_advisory_unlock(hashtextextended('bg-reconcile', 0))"
_METADATA: Final = EventMetadata(producer="booking-guard-reconciler")

Kind = Literal[
    "in_sync",
    "orphan_cancelled",
    "orphan_alerted",
    "orphan_to_cancel",
    "orphan_in_grace",
    "status_drift_applied",
    "status_drift",
    "unguarded",
    "in_flight",
]
DriftObserver = Callable[[str], None]

# Cal.com's status -> the appointment status it implies.
_APPOINTMENT_STATUS: Final = {
    "accepted": "booked",
    "pending": "pending",
    "cancelled": "cancelled",
    "rejected": "declined",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One Cal.com booking compared with the ledger."""

    kind: Kind
    booking_uid: str
    calcom_status: str | None
    appointment_status: str | None = None
    attempt_id: uuid.UUID | None = None
    call_id: str | None = None
    note: str = ""


class Reconciler:
    """Settles bookings of ours that no appointment holds, and drift between both ledgers."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        store: EventStore,
        calcom: CalcomClient,
        clock: Clock,
        orphans: Orphans,
        orphan_grace: timedelta = timedelta(seconds=600),
        observer: DriftObserver | None = None,
    ) -> None:
        self._pool = pool
        self._store = store
        self._calcom = calcom
        self._clock = clock
        self._orphans = orphans
        self._grace = orphan_grace
        # Told the kind of each drift this process found and acted on (metrics).
        self._observer = observer

    async def run_queue(self, *, limit: int = 10) -> list[Finding]:
        """One pass over the keys whose attempts may have left a booking: settle each."""
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            due = await idempotency.take_due(conn, now=now, lease_until=now + LEASE, limit=limit)
        findings: list[Finding] = []
        for key in due:
            findings.extend(await self._settle_key(key))
            async with self._pool.acquire() as conn:
                await idempotency.reconciled(conn, key)
        return findings

    async def _settle_key(self, key: idempotency.DueKey) -> list[Finding]:
        requested = await self._intent(key.attempt_id)
        if requested is None or requested.attendee.email is None:
            return []
        found = await self._calcom.find_bookings(
            attendee_email=requested.attendee.email,
            event_type_id=requested.event_type_id,
            start=requested.start,
        )
        ours = [b for b in found if made_by(b, frozenset(key.attempt_ids)) and is_live(b)]
        findings = []
        for booking in ours:
            held = await appointments.by_booking_uid(self._pool, booking.uid)
            if held is not None:
                continue  # a retry adopted it meanwhile
            attempt_id = attempt_of(booking) or key.attempt_id
            done = await self._orphans.handle(
                attempt_id,
                requested.call_id,
                booking,
                reason="no producer came back for this booking within the orphan grace",
            )
            kind: Kind = "orphan_alerted" if self._orphans.policy == "alert" else "orphan_cancelled"
            findings.append(
                Finding(
                    kind if done else "orphan_to_cancel",
                    booking.uid,
                    booking.status,
                    attempt_id=attempt_id,
                    call_id=requested.call_id,
                )
            )
        return findings

    async def reconcile_window(self, *, window: timedelta = WINDOW) -> list[Finding] | None:
        """Compare and settle the bookings Cal.com created in the last `window`, in one process
        at a time (a session advisory lock); None when another process is doing it."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval(_TRY_LOCK):
                return None
            try:
                bookings = await self._calcom.list_bookings(
                    created_after=self._clock.now() - window
                )
                return await self.reconcile(bookings)
            finally:
                await conn.execute(_UNLOCK)

    async def reconcile(
        self, bookings: Sequence[CalcomBooking], *, dry_run: bool = False
    ) -> list[Finding]:
        """Compare Cal.com's `bookings` with the ledger; unless `dry_run`, settle what differs."""
        return [await self._compare(booking, dry_run=dry_run) for booking in bookings]

    async def _compare(self, booking: CalcomBooking, *, dry_run: bool) -> Finding:
        status = (booking.status or "").lower() or None
        row = await appointments.by_booking_uid(self._pool, booking.uid)
        attempt_id = attempt_of(booking)
        call_id = _text((booking.metadata or {}).get("call_id"))
        if row is not None:
            expected = _APPOINTMENT_STATUS.get(status or "")
            if expected is None or expected == row["status"]:
                return Finding("in_sync", booking.uid, status, row["status"], row["attempt_id"])
            if not dry_run:
                await self._apply_status(booking, status or "", row["call_id"])
            kind: Kind = "status_drift" if dry_run else "status_drift_applied"
            self._observe(kind)
            return Finding(kind, booking.uid, status, row["status"], row["attempt_id"])
        if attempt_id is None:
            # Not made by a booking-guard attempt (no attempt id): none of our business, unless
            # it carries a call id, which only our producers' agents set.
            if call_id is None:
                return Finding("in_sync", booking.uid, status, note="not ours")
            return await self._unguarded(booking, None, call_id, dry_run=dry_run)
        requested = await self._intent(attempt_id)
        if requested is None:
            return await self._unguarded(booking, attempt_id, call_id, dry_run=dry_run)
        if status not in LIVE_STATUSES:
            return Finding("in_sync", booking.uid, status, None, attempt_id, note="not live")
        if await self._in_flight(attempt_id):
            return Finding("in_flight", booking.uid, status, None, attempt_id, requested.call_id)
        created = booking.created_at or requested.requested_at
        if self._clock.now() - created < self._grace:
            return Finding("orphan_in_grace", booking.uid, status, None, attempt_id)
        if dry_run:
            return Finding(
                "orphan_to_cancel" if self._orphans.policy == "cancel" else "orphan_alerted",
                booking.uid,
                status,
                None,
                attempt_id,
                requested.call_id,
            )
        done = await self._orphans.handle(
            attempt_id,
            requested.call_id,
            booking,
            reason="a booking of ours that no appointment holds (reconciliation)",
        )
        kind = "orphan_alerted" if self._orphans.policy == "alert" else "orphan_cancelled"
        return Finding(
            kind if done else "orphan_to_cancel",
            booking.uid,
            status,
            None,
            attempt_id,
            requested.call_id,
        )

    async def _unguarded(
        self,
        booking: CalcomBooking,
        attempt_id: uuid.UUID | None,
        call_id: str | None,
        *,
        dry_run: bool,
    ) -> Finding:
        if not dry_run and call_id is not None and booking.start is not None:
            alarm = UnguardedBookingDetected(
                booking_uid=booking.uid,
                call_id=call_id,
                attempt_id=attempt_id,
                start=booking.start,
                detected_at=self._clock.now(),
            )
            # The webhook's alarm id, so a booking seen both ways is recorded once.
            await self._append(booking.uid, alarm, change_id("unguarded", booking.uid))
        self._observe("unguarded")
        return Finding(
            "unguarded",
            booking.uid,
            booking.status,
            None,
            attempt_id,
            call_id,
            note="our kind of metadata, an attempt this ledger does not know",
        )

    async def _apply_status(self, booking: CalcomBooking, status: str, call_id: str) -> None:
        now = self._clock.now()
        event: Event
        if status == "cancelled":
            event = BookingCancelled(
                booking_uid=booking.uid, call_id=call_id, reason="reconciled", cancelled_at=now
            )
        elif status == "rejected":
            event = BookingDeclined(
                booking_uid=booking.uid, call_id=call_id, reason="reconciled", declined_at=now
            )
        elif status == "accepted":
            event = BookingAccepted(booking_uid=booking.uid, call_id=call_id, accepted_at=now)
        else:
            return
        await self._append(booking.uid, event, change_id("reconciled", status, booking.uid))

    async def _append(self, uid: str, event: Event, event_id: uuid.UUID) -> None:
        await record_on_booking(
            self._pool, self._store, uid, event, event_id=event_id, metadata=_METADATA
        )

    async def _intent(self, attempt_id: uuid.UUID) -> BookingRequested | None:
        events = await self._store.read_stream(attempt_stream(attempt_id), limit=1)
        if events and isinstance(events[0].event, BookingRequested):
            return events[0].event
        return None

    async def _in_flight(self, attempt_id: uuid.UUID) -> bool:
        async with self._pool.acquire() as conn:
            return await idempotency.holds_in_flight(conn, attempt_id)

    def _observe(self, kind: str) -> None:
        if self._observer is not None:
            self._observer(kind)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
