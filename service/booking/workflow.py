"""The booking workflow: intent, Cal.com, guards, outcome, as atomic phases (DESIGN.md §9).

No transaction is ever open while Cal.com is being called: the intent commits before the call
and the outcome commits in a statement of its own after it, so a slow Cal.com never holds back
the transaction horizon every projector reads behind.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from events.booking import (
    Attendee,
    BookingOptions,
    BookingRequested,
    CalcomBookingReceived,
    attempt_stream,
)
from events.models import NewEvent
from events.store import Connection, EventStore, ExpectedVersion
from projections import appointments
from service.booking import idempotency, phase_writes
from service.booking.attempt import (
    Attempt,
    AttemptInFlight,
    BookingInputError,
    BookingResult,
    ClaimedAttempt,
    IdempotencyKeyReused,
    default_holder,
    event_metadata,
    plus_address,
)
from service.booking.clock import Clock
from service.booking.event_kinds import EventTypeCatalog, UnsupportedEventType
from service.booking.guards import (
    Guard,
    deferring_layer_3,
    is_live,
    made_by,
    run_guards,
)
from service.booking.models import AttemptOutcome, BookingRequest
from service.booking.orphans import Orphans
from service.booking.outcomes import Observer, OutcomeRecorder, current
from service.booking.slot_locks import KeyedLocks
from service.calcom.port import (
    CalcomBooking,
    CalcomClient,
    CalcomRejected,
    CalcomSlotUnavailable,
    CalcomUnavailable,
)
from service.ops.logs import bind

log = logging.getLogger(__name__)

MAX_BOOKING_HORIZON = timedelta(days=2 * 366)
# How long a taken slot waits for another attempt of the same call to record the booking it
# made (it has its answer already; only its outcome statement is left).
SIBLING_WAIT_SECONDS = 10.0
SIBLING_POLL_SECONDS = 0.05


class BookingWorkflow:
    """Books through Cal.com exactly once per idempotency key, with every step in the ledger."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        store: EventStore,
        calcom: CalcomClient,
        clock: Clock,
        guards: Sequence[Guard],
        fallback_email: str | None = None,
        in_flight_grace: timedelta = timedelta(seconds=150),
        holder: str | None = None,
        observer: Observer | None = None,
        orphans: Orphans | None = None,
        orphan_grace: timedelta = timedelta(seconds=600),
        event_types: EventTypeCatalog | None = None,
    ) -> None:
        self._pool = pool
        self._store = store
        self._calcom = calcom
        self._clock = clock
        self._guards = list(guards)
        self._deferring_guards = deferring_layer_3(self._guards)
        self._fallback_email = fallback_email
        self._grace = in_flight_grace
        self._holder = holder or default_holder()
        # None: every event type is booked as if plain (tests of the workflow alone).
        self._event_types = event_types
        self._outcomes = OutcomeRecorder(
            pool=pool,
            store=store,
            clock=clock,
            holder=self._holder,
            observer=observer,
            orphan_grace=orphan_grace,
        )
        self._orphans = orphans or Orphans(pool=pool, store=store, calcom=calcom, clock=clock)
        self._slot_locks = KeyedLocks()

    async def book(
        self,
        request: BookingRequest,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> BookingResult:
        """Book one slot for one call; a repeated key answers as before."""
        claimed = await self.claim(
            request, idempotency_key=idempotency_key, correlation_id=correlation_id
        )
        if isinstance(claimed, BookingResult):
            return claimed
        return BookingResult(await self.drive(claimed), replayed=False)

    async def claim(
        self,
        request: BookingRequest,
        *,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> BookingResult | ClaimedAttempt:
        """Phase 1 alone: the stored answer of a repeated key, or an attempt to `drive`.

        Split from `book` so that an asynchronous submission can name its attempt (and let the
        producer poll it) before Cal.com is called.
        """
        now = self._clock.now()
        self._check_start(request, now)
        requested = BookingRequested(
            attempt_id=uuid.uuid4(),
            call_id=request.call_id,
            event_type_id=request.event_type_id,
            start=request.start,
            attendee=self._attendee_to_send(request),
            metadata=request.metadata,
            idempotency_key=idempotency_key or request.derived_key(),
            fingerprint=request.fingerprint(),
            requested_at=now,
            options=BookingOptions(
                booking_fields=request.booking_fields,
                length_in_minutes=request.length_in_minutes,
                language=request.attendee.language,
                guests=request.guests,
                location=request.location,
            ),
        )
        if self._event_types is not None:
            # After our own checks, before the intent: see service/booking/event_kinds.py.
            try:
                await self._event_types.check_bookable(
                    request.event_type_id, request.booking_fields
                )
            except (UnsupportedEventType, BookingInputError):
                # A key that already has its answer keeps it (invariant 5), even when the
                # event type changed kind since.
                async with self._pool.acquire() as conn:
                    stored = await idempotency.finished_answer(
                        conn, requested.idempotency_key, fingerprint=requested.fingerprint
                    )
                if stored is None:
                    raise
                return BookingResult(
                    await self._now_true(AttemptOutcome.model_validate(stored)), True
                )
        return await self._claim(
            requested, correlation_id, same_request=request.matches_fingerprint
        )

    async def drive(self, claimed: ClaimedAttempt) -> AttemptOutcome:
        """Phases 2 and 3 of a claimed attempt: call Cal.com, judge, record the outcome."""
        return await self._drive(
            claimed.attempt,
            reconcile=claimed.reconcile,
            held=claimed.held,
            held_mark=claimed.held_mark,
        )

    def _check_start(self, request: BookingRequest, now: datetime) -> None:
        if request.start <= now:
            raise BookingInputError("start", f"{request.start.isoformat()} is in the past")
        if request.start > now + MAX_BOOKING_HORIZON:
            raise BookingInputError("start", "is more than two years ahead")

    def _attendee_to_send(self, request: BookingRequest) -> Attendee:
        # Layer 0: never one shared address, or Cal.com hands back another caller's booking.
        email = request.attendee.email
        if email is None:
            if self._fallback_email is None:
                raise BookingInputError(
                    "attendee.email", "is required (BOOKING_GUARD_FALLBACK_EMAIL is not set)"
                )
            email = plus_address(self._fallback_email, request.call_id)
        return Attendee(
            name=request.attendee.name,
            email=email,
            time_zone=request.attendee.time_zone,
            phone_number=request.attendee.phone_number,
        )

    async def _claim(
        self,
        requested: BookingRequested,
        correlation_id: str | None,
        *,
        same_request: Callable[[str], bool] | None = None,
    ) -> BookingResult | ClaimedAttempt:
        """Phase 1: claim the key and append the intent, atomically."""
        key = requested.idempotency_key
        now = requested.requested_at
        mark = self._slot_locks.mark()
        claim = await phase_writes.claim(
            self._pool,
            key,
            fingerprint=requested.fingerprint,
            attempt_id=requested.attempt_id,
            holder=self._holder,
            now=now,
            stream_id=attempt_stream(requested.attempt_id),
            intent=self._store.encode(self._intent(requested, correlation_id)),
            call_id=requested.call_id,
            event_type_id=requested.event_type_id,
            start=requested.start,
        )
        if claim.claimed:
            attempt = self._attempt(requested, now, [requested.attempt_id], correlation_id)
            return ClaimedAttempt(attempt, reconcile=False, held=claim.held, held_mark=mark)

        # The key exists (or did a moment ago): decide under its row lock.
        async with self._pool.acquire() as conn, conn.transaction():
            if await idempotency.insert(
                conn,
                key,
                fingerprint=requested.fingerprint,
                attempt_id=requested.attempt_id,
                holder=self._holder,
                now=now,
            ):
                await self._append_intent(conn, requested, correlation_id)
                attempt = self._attempt(requested, now, [requested.attempt_id], correlation_id)
                return ClaimedAttempt(attempt, reconcile=False)

            row = await idempotency.lock(conn, key)
            # A key stored before fingerprints were versioned carries v1: same_request knows both.
            if not (
                same_request(row.fingerprint)
                if same_request is not None
                else row.fingerprint == requested.fingerprint
            ):
                raise IdempotencyKeyReused(
                    f"idempotency key {key!r} was used for a different request"
                )
            if row.status == "finished" and row.response_body is not None:
                stored = AttemptOutcome.model_validate(row.response_body)
                return BookingResult(await self._now_true(stored), True)
            if row.status == "in_flight":
                if not idempotency.is_stale(row, now=now, grace=self._grace):
                    retry_after = max(1, int((row.locked_at + self._grace - now).total_seconds()))
                    raise AttemptInFlight(row.attempt_id, min(retry_after, 5))
                # The holder died mid-attempt: drive its attempt to an outcome, checking
                # Cal.com for the booking it may already have made.
                await idempotency.take_over(conn, key, holder=self._holder, now=now)
                original = await self._load_intent(row.attempt_id)
                attempt = self._attempt(
                    original, row.first_called_at, row.attempt_ids, correlation_id
                )
                return ClaimedAttempt(attempt, reconcile=True)
            # A retryable failure: a new attempt that looks for the earlier one's booking first.
            retry = requested.model_copy(update={"retry_of": row.attempt_id})
            await idempotency.open_retry(
                conn, key, attempt_id=retry.attempt_id, holder=self._holder, now=now
            )
            await self._append_intent(conn, retry, correlation_id)
            ids = [*row.attempt_ids, retry.attempt_id]
            attempt = self._attempt(retry, row.first_called_at, ids, correlation_id)
            return ClaimedAttempt(attempt, reconcile=True)

    def _attempt(
        self,
        requested: BookingRequested,
        first_called_at: datetime,
        attempt_ids: Sequence[uuid.UUID],
        correlation_id: str | None,
    ) -> Attempt:
        # Every later log line of this request or recovery names the call and the attempt.
        bind(
            call_id=requested.call_id,
            attempt_id=requested.attempt_id,
            correlation_id=correlation_id,
        )
        return Attempt(
            attempt_id=requested.attempt_id,
            key=requested.idempotency_key,
            requested=requested,
            first_called_at=first_called_at,
            own_attempt_ids=frozenset(attempt_ids),
            correlation_id=correlation_id,
        )

    def _intent(self, requested: BookingRequested, correlation_id: str | None) -> NewEvent:
        return NewEvent(requested, metadata=event_metadata(self._holder, correlation_id))

    async def _append_intent(
        self, conn: Connection, requested: BookingRequested, correlation_id: str | None
    ) -> None:
        await self._store.append(
            attempt_stream(requested.attempt_id),
            [self._intent(requested, correlation_id)],
            expected_version=ExpectedVersion.NO_STREAM,
            connection=conn,
        )

    async def _load_intent(self, attempt_id: uuid.UUID) -> BookingRequested:
        events = await self._store.read_stream(attempt_stream(attempt_id), limit=1)
        if not events or not isinstance(events[0].event, BookingRequested):
            raise LookupError(f"attempt {attempt_id} has no BookingRequested event")
        return events[0].event

    async def recover_stale(self, *, limit: int = 10) -> list[AttemptOutcome]:
        """Recovery: drive attempts whose holder went quiet for longer than the grace period.

        The keys are taken over in one short transaction (SKIP LOCKED, so several processes
        share the work), then each attempt is driven outside it, reconciling with Cal.com first.
        """
        now = self._clock.now()
        async with self._pool.acquire() as conn, conn.transaction():
            keys = await idempotency.stale_keys(conn, older_than=now - self._grace, limit=limit)
            rows = []
            for key in keys:
                rows.append(await idempotency.lock(conn, key))
                await idempotency.take_over_for_recovery(conn, key, holder=self._holder, now=now)
        outcomes = []
        for row in rows:
            original = await self._load_intent(row.attempt_id)
            attempt = self._attempt(original, row.first_called_at, row.attempt_ids, None)
            log.warning("recovering attempt %s of call %s", attempt.attempt_id, original.call_id)
            outcomes.append(await self._drive(attempt, reconcile=True))
        return outcomes

    async def _drive(
        self,
        attempt: Attempt,
        *,
        reconcile: bool,
        held: dict[str, Any] | None = None,
        held_mark: int | None = None,
    ) -> AttemptOutcome:
        """Phases 2 and 3: ask Cal.com (or find what we asked before), judge, record.

        `held` is what the claim statement read of the call's appointment for the slot at
        `held_mark`; it stands unless another attempt for the slot finished in this process
        since (then, or without a mark, the appointment is looked up here).
        """
        r = attempt.requested
        slot = (r.call_id, r.event_type_id, r.start)
        # One call's attempts for one slot take turns in this process, so two of its keys at
        # once end with one booking: the second finds the first's appointment below.
        async with self._slot_locks.hold(slot):
            if held_mark is None or self._slot_locks.released_since(slot, held_mark):
                held = await appointments.held_by_call(
                    self._pool, r.call_id, r.event_type_id, r.start
                )
            if held is not None:
                # The call's own appointment first: no second booking, no refusal.
                return await self._outcomes.held(attempt, held)
            return await self._ask_calcom(attempt, reconcile=reconcile)

    async def _ask_calcom(self, attempt: Attempt, *, reconcile: bool) -> AttemptOutcome:
        # What Cal.com listed for the slot, when we looked: a taken slot's second look uses it.
        found: list[CalcomBooking] = []
        try:
            booking, found = await self._find_own(attempt) if reconcile else (None, [])
            if booking is None:
                try:
                    booking = await self._calcom.create_booking(attempt.create_request())
                except CalcomSlotUnavailable:
                    # The slot may be taken by our own booking: a re-drive after a crash, the
                    # client's retry of a create whose first answer was lost, or another driver
                    # of this attempt (recovery took it over while this one was slow). Always
                    # looked for: a refusal must never leave a booking of ours unaccounted for.
                    own, found = await self._find_own(attempt)
                    if own is None:
                        raise
                    booking = own
        except CalcomSlotUnavailable as e:
            held = await self._held_by_sibling(attempt, found)
            if held is not None:
                # Another attempt of this very call (another key, maybe another process) booked
                # the slot meanwhile: the call holds it.
                return await self._outcomes.held(attempt, held)
            return await self._outcomes.reject_by_calcom(attempt, e)
        except CalcomRejected as e:
            return await self._outcomes.fail(attempt, e, retryable=False)
        except CalcomUnavailable as e:
            # A create that timed out, lost its answer or met a 5xx may have written; so may an
            # earlier attempt of this key that we could not look up now.
            maybe_written = reconcile or e.earlier_attempt_uncertain or _may_have_written(e)
            return await self._outcomes.fail(
                attempt, e, retryable=True, maybe_written=maybe_written
            )

        received = self._outcomes.received(attempt, booking, reconciled=reconcile)
        if self._deferring_guards is not None:
            # Layer 3's lookup is left to the confirmation's statement (the unique index): the
            # full chain runs only when this one refuses or the index does.
            chain = await run_guards(self._deferring_guards, attempt.facts, booking)
            if chain.rejection is None and chain.existing is None:
                try:
                    return await self._outcomes.confirm(
                        attempt, received, booking, chain, layer_3_deferred=True
                    )
                except appointments.AppointmentExists:
                    pass
        return await self._judge(attempt, received, booking)

    async def _judge(
        self, attempt: Attempt, received: CalcomBookingReceived, booking: CalcomBooking
    ) -> AttemptOutcome:
        """The full guard chain's answer, recorded."""
        r = attempt.requested
        chain = await run_guards(self._guards, attempt.facts, booking)
        if chain.rejection is not None:
            outcome = await self._outcomes.reject(attempt, received, chain)
            if attempt.facts.made(booking) and is_live(booking):
                # Ours, and refused: never left live in Cal.com for nobody (invariant 8).
                await self._orphans.cancel_refused(
                    attempt.attempt_id, r.call_id, booking, reason=outcome.reason
                )
            return outcome
        if chain.existing is not None:
            row = await appointments.get(self._pool, chain.existing.appointment_id)
            if row is not None:
                return await self._outcomes.held(attempt, row, received=received)
        return await self._outcomes.confirm(attempt, received, booking, chain)

    async def _held_by_sibling(
        self, attempt: Attempt, found: Sequence[CalcomBooking]
    ) -> dict[str, Any] | None:
        """The call's appointment for this slot, made by another of its attempts: at once, or,
        when Cal.com holds a live booking of this call for the slot whose attempt has not
        recorded its outcome yet (two keys at once, in two processes), once it has."""
        r = attempt.requested
        held = await appointments.held_by_call(self._pool, r.call_id, r.event_type_id, r.start)
        if held is not None or not any(
            (b.metadata or {}).get("call_id") == r.call_id and is_live(b) for b in found
        ):
            return held
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SIBLING_WAIT_SECONDS
        while held is None and loop.time() < deadline:
            # The sibling is one statement away from its outcome: look again shortly.
            await asyncio.sleep(SIBLING_POLL_SECONDS)
            held = await appointments.held_by_call(self._pool, r.call_id, r.event_type_id, r.start)
        return held

    async def _find_own(self, attempt: Attempt) -> tuple[CalcomBooking | None, list[CalcomBooking]]:
        """The booking one of this key's attempts made, live ones first (None: none found),
        and every booking Cal.com listed for the attendee and slot."""
        email = attempt.requested.attendee.email
        if email is None:
            return None, []
        found = await self._calcom.find_bookings(
            attendee_email=email,
            event_type_id=attempt.requested.event_type_id,
            start=attempt.requested.start,
        )
        ours = [b for b in found if made_by(b, attempt.own_attempt_ids)]
        # A cancelled or rejected one counts only when nothing live exists: its outcome is then
        # recorded (the status guard refuses it) instead of booking again.
        return next((b for b in ours if is_live(b)), ours[0] if ours else None), found

    async def _now_true(self, outcome: AttemptOutcome) -> AttemptOutcome:
        """A stored answer with its appointment as it is now (invariant 5: still true)."""
        if outcome.appointment is None:
            return outcome
        row = await appointments.get(self._pool, outcome.appointment.appointment_id)
        return current(outcome, row)

    async def outcome_of(self, attempt_id: uuid.UUID) -> AttemptOutcome | None:
        """The attempt's outcome as the ledger has it; `pending` while in flight."""
        return await self._outcomes.outcome_of(attempt_id)


def _may_have_written(error: CalcomUnavailable) -> bool:
    # No answer (timeout, dropped connection) or a server error after the request was sent;
    # a 429 is refused before anything is done.
    return error.status is None or error.status >= 500
