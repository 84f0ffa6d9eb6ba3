"""The booking workflow: intent, Cal.com, guards, outcome, as atomic phases (DESIGN.md §9).

No transaction is ever open while Cal.com is being called: the intent commits before the call
and the outcome opens its own transaction after it, so a slow Cal.com never holds back the
transaction horizon every projector reads behind.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from events.booking import (
    Attendee,
    BookingConfirmed,
    BookingFailed,
    BookingRejected,
    BookingRequested,
    CalcomBookingReceived,
    attempt_stream,
)
from events.errors import WrongExpectedVersion
from events.models import Event, EventMetadata, NewEvent
from events.store import Connection, EventStore, ExpectedVersion
from projections import appointments
from service import idempotency
from service.booking_models import AttemptOutcome, BookingRequest
from service.calcom.port import (
    CalcomBooking,
    CalcomClient,
    CalcomError,
    CalcomRejected,
    CalcomSlotUnavailable,
    CalcomUnavailable,
    CreateBooking,
)
from service.clock import Clock
from service.guards import AttemptFacts, ChainResult, Guard, run_guards
from service.logs import bind
from service.outcomes import (
    appointment_from,
    appointment_from_row,
    failure_reason,
    failure_status,
    outcome_from_events,
    rejected_outcome,
)

log = logging.getLogger(__name__)

MAX_BOOKING_HORIZON = timedelta(days=2 * 366)


class BookingInputError(ValueError):
    """The request is well-formed JSON but cannot be booked as it stands (HTTP 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class IdempotencyKeyReused(Exception):
    """The key was used before for a different request body (HTTP 422)."""


class AttemptInFlight(Exception):
    """An attempt with this key is still running (HTTP 409 with Retry-After)."""

    def __init__(self, attempt_id: uuid.UUID, retry_after: int) -> None:
        super().__init__(f"attempt {attempt_id} with this idempotency key is still in flight")
        self.attempt_id = attempt_id
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class BookingResult:
    outcome: AttemptOutcome
    replayed: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt as the workflow drives it."""

    attempt_id: uuid.UUID
    key: str
    requested: BookingRequested
    first_called_at: datetime
    # Every attempt under this key: a booking carrying any of these ids is ours.
    own_attempt_ids: frozenset[uuid.UUID]
    correlation_id: str | None

    @property
    def facts(self) -> AttemptFacts:
        return AttemptFacts(
            attempt_id=self.attempt_id,
            call_id=self.requested.call_id,
            start=self.requested.start,
            attendee_email=self.requested.attendee.email,
            first_called_at=self.first_called_at,
        )

    def create_request(self) -> CreateBooking:
        r = self.requested
        return CreateBooking(
            event_type_id=r.event_type_id,
            start=r.start,
            attendee_name=r.attendee.name,
            attendee_time_zone=r.attendee.time_zone,
            attendee_email=r.attendee.email,
            attendee_phone_number=r.attendee.phone_number,
            metadata={**r.metadata, "call_id": r.call_id, "attempt_id": str(self.attempt_id)},
        )


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    """An attempt whose intent is recorded and whose key this process holds."""

    attempt: Attempt
    reconcile: bool

    @property
    def attempt_id(self) -> uuid.UUID:
        return self.attempt.attempt_id


def plus_address(mailbox: str, call_id: str) -> str:
    """`termin@example.com` -> `termin+<call_id>@example.com`: one attendee address per call."""
    local, _, domain = mailbox.partition("@")
    tag = "".join(c for c in call_id if c.isalnum() or c in "-_.")[:64]
    return f"{local}+{tag}@{domain}"


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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
        observer: Callable[[AttemptOutcome], None] | None = None,
    ) -> None:
        self._pool = pool
        # Told of each outcome this process records (metrics); never of replays.
        self._observer = observer
        self._store = store
        self._calcom = calcom
        self._clock = clock
        self._guards = list(guards)
        self._fallback_email = fallback_email
        self._grace = in_flight_grace
        self._holder = holder or default_holder()

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
        )
        claimed = await self._claim(requested, correlation_id)
        if isinstance(claimed, BookingResult):
            return claimed
        attempt, reconcile = claimed
        return ClaimedAttempt(attempt, reconcile)

    async def drive(self, claimed: ClaimedAttempt) -> AttemptOutcome:
        """Phases 2 and 3 of a claimed attempt: call Cal.com, judge, record the outcome."""
        return await self._drive(claimed.attempt, reconcile=claimed.reconcile)

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
        self, requested: BookingRequested, correlation_id: str | None
    ) -> BookingResult | tuple[Attempt, bool]:
        """Phase 1: claim the key and append the intent, in one transaction."""
        key = requested.idempotency_key
        now = requested.requested_at
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
                return self._attempt(requested, now, [requested.attempt_id], correlation_id), False

            row = await idempotency.lock(conn, key)
            if row.fingerprint != requested.fingerprint:
                raise IdempotencyKeyReused(
                    f"idempotency key {key!r} was used for a different request"
                )
            if row.status == "finished" and row.response_body is not None:
                return BookingResult(AttemptOutcome.model_validate(row.response_body), True)
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
                return attempt, True
            # A retryable failure: a new attempt that looks for the earlier one's booking first.
            retry = requested.model_copy(update={"retry_of": row.attempt_id})
            await idempotency.open_retry(
                conn, key, attempt_id=retry.attempt_id, holder=self._holder, now=now
            )
            await self._append_intent(conn, retry, correlation_id)
            ids = [*row.attempt_ids, retry.attempt_id]
            return self._attempt(retry, row.first_called_at, ids, correlation_id), True

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

    async def _append_intent(
        self, conn: Connection, requested: BookingRequested, correlation_id: str | None
    ) -> None:
        await self._store.append(
            attempt_stream(requested.attempt_id),
            [NewEvent(requested, metadata=self._metadata(correlation_id))],
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
                await idempotency.take_over(conn, key, holder=self._holder, now=now)
        outcomes = []
        for row in rows:
            original = await self._load_intent(row.attempt_id)
            attempt = self._attempt(original, row.first_called_at, row.attempt_ids, None)
            log.warning("recovering attempt %s of call %s", attempt.attempt_id, original.call_id)
            outcomes.append(await self._drive(attempt, reconcile=True))
        return outcomes

    async def _drive(self, attempt: Attempt, *, reconcile: bool) -> AttemptOutcome:
        """Phases 2 and 3: ask Cal.com (or find what we asked before), judge, record."""
        try:
            booking = await self._find_own(attempt) if reconcile else None
            if booking is None:
                try:
                    booking = await self._calcom.create_booking(attempt.create_request())
                except CalcomSlotUnavailable as taken:
                    # The slot may be taken by our own booking: a re-drive after a crash, or the
                    # client's retry of a create whose first answer was lost.
                    uncertain = reconcile or taken.earlier_attempt_uncertain
                    own = await self._find_own(attempt) if uncertain else None
                    if own is None:
                        raise
                    booking = own
        except CalcomSlotUnavailable as e:
            return await self._reject_by_calcom(attempt, e)
        except CalcomRejected as e:
            return await self._fail(attempt, e, retryable=False)
        except CalcomUnavailable as e:
            return await self._fail(attempt, e, retryable=True)

        received = self._received(attempt, booking, reconciled=reconcile)
        chain = await run_guards(self._guards, attempt.facts, booking)
        if chain.rejection is not None:
            return await self._reject(attempt, received, chain)
        if chain.existing is not None:
            return await self._already_confirmed(attempt, received, chain)
        return await self._confirm(attempt, received, booking, chain)

    async def _find_own(self, attempt: Attempt) -> CalcomBooking | None:
        email = attempt.requested.attendee.email
        if email is None:
            return None
        found = await self._calcom.find_bookings(
            attendee_email=email,
            event_type_id=attempt.requested.event_type_id,
            start=attempt.requested.start,
        )
        for booking in found:
            attempt_id = (booking.metadata or {}).get("attempt_id")
            if attempt_id is not None and _as_uuid(attempt_id) in attempt.own_attempt_ids:
                return booking
        return None

    def _received(
        self, attempt: Attempt, booking: CalcomBooking, *, reconciled: bool
    ) -> CalcomBookingReceived:
        return CalcomBookingReceived(
            attempt_id=attempt.attempt_id,
            call_id=attempt.requested.call_id,
            booking_uid=booking.uid,
            booking_id=booking.id,
            status=booking.status,
            start=booking.start,
            end=booking.end,
            created_at=booking.created_at,
            booking_metadata=booking.metadata,
            attendees=[a.model_dump(exclude_none=True) for a in booking.attendees],
            first_called_at=attempt.first_called_at,
            received_at=self._clock.now(),
            reconciled=reconciled,
        )

    async def _confirm(
        self,
        attempt: Attempt,
        received: CalcomBookingReceived,
        booking: CalcomBooking,
        chain: ChainResult,
    ) -> AttemptOutcome:
        r = attempt.requested
        confirmed = BookingConfirmed(
            attempt_id=attempt.attempt_id,
            appointment_id=attempt.attempt_id,
            call_id=r.call_id,
            booking_uid=booking.uid,
            booking_id=booking.id,
            event_type_id=r.event_type_id,
            start=booking.start or r.start,
            end=booking.end,
            attendee_name=r.attendee.name,
            attendee_email=r.attendee.email,
            confirmed_at=self._clock.now(),
        )
        outcome = AttemptOutcome(
            attempt_id=attempt.attempt_id,
            status="confirmed",
            appointment=appointment_from(confirmed),
            detail={"notes": chain.notes} if chain.notes else None,
            status_code=201,
        )
        try:
            return await self._record(attempt, [received, confirmed], outcome, apply=confirmed)
        except appointments.AppointmentExists:
            # Layer 4: a race none of the other layers could see. The confirmation rolled back
            # with the refused insert; the attempt is rejected instead.
            rejected = self._rejected_event(
                attempt,
                guard="database_constraint",
                layer=4,
                reason="duplicate_booking",
                detail={"booking_uid": booking.uid, "constraint": appointments.UNIQUE_INDEX},
                booking_uid=booking.uid,
            )
            return await self._record(
                attempt, [received, rejected], rejected_outcome(attempt.attempt_id, rejected)
            )

    async def _already_confirmed(
        self, attempt: Attempt, received: CalcomBookingReceived, chain: ChainResult
    ) -> AttemptOutcome:
        existing = chain.existing
        assert existing is not None
        rejected = self._rejected_event(
            attempt,
            guard="existing_appointment",
            layer=3,
            reason="already_confirmed_for_call",
            detail={"appointment_id": str(existing.appointment_id)},
            booking_uid=existing.booking_uid,
        )
        row = await appointments.get(self._pool, existing.appointment_id)
        outcome = AttemptOutcome(
            attempt_id=attempt.attempt_id,
            status="confirmed",
            appointment=appointment_from_row(row) if row else None,
            detail={"existing_attempt_id": str(existing.attempt_id)},
            status_code=200,
        )
        return await self._record(attempt, [received, rejected], outcome)

    async def _reject(
        self, attempt: Attempt, received: CalcomBookingReceived, chain: ChainResult
    ) -> AttemptOutcome:
        first = chain.rejection
        assert first is not None
        rejected = self._rejected_event(
            attempt,
            guard=first.guard,
            layer=first.layer,
            reason=first.reason or "rejected",
            detail={**first.detail, "failures": chain.failures(), "notes": chain.notes},
            booking_uid=received.booking_uid,
        )
        return await self._record(
            attempt, [received, rejected], rejected_outcome(attempt.attempt_id, rejected)
        )

    async def _reject_by_calcom(
        self, attempt: Attempt, error: CalcomSlotUnavailable
    ) -> AttemptOutcome:
        rejected = self._rejected_event(
            attempt,
            guard="calcom",
            layer=None,
            reason="slot_unavailable",
            detail={"calcom_status": error.status, "calcom_message": error.message},
        )
        return await self._record(
            attempt, [rejected], rejected_outcome(attempt.attempt_id, rejected)
        )

    async def _fail(
        self, attempt: Attempt, error: CalcomError, *, retryable: bool
    ) -> AttemptOutcome:
        reason = failure_reason(error, retryable=retryable)
        failed = BookingFailed(
            attempt_id=attempt.attempt_id,
            call_id=attempt.requested.call_id,
            reason=reason,
            retryable=retryable,
            status_code=error.status,
            message=error.message,
            failed_at=self._clock.now(),
        )
        outcome = AttemptOutcome(
            attempt_id=attempt.attempt_id,
            status="failed",
            reason=reason,
            retryable=retryable,
            detail={"calcom_status": error.status, "calcom_message": error.message},
            status_code=failure_status(error, retryable=retryable),
        )
        return await self._record(attempt, [failed], outcome)

    def _rejected_event(
        self,
        attempt: Attempt,
        *,
        guard: str,
        layer: int | None,
        reason: str,
        detail: dict[str, object],
        booking_uid: str | None = None,
    ) -> BookingRejected:
        return BookingRejected(
            attempt_id=attempt.attempt_id,
            call_id=attempt.requested.call_id,
            guard=guard,
            layer=layer,
            reason=reason,
            detail=detail,
            booking_uid=booking_uid,
            rejected_at=self._clock.now(),
        )

    async def _record(
        self,
        attempt: Attempt,
        events: Sequence[Event],
        outcome: AttemptOutcome,
        *,
        apply: BookingConfirmed | None = None,
    ) -> AttemptOutcome:
        """Phase 3: the outcome events, the appointment and the key's answer, atomically."""
        key_status = "retryable" if outcome.status == "failed" and outcome.retryable else "finished"
        metadata = self._metadata(attempt.correlation_id)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if apply is not None:
                    await appointments.apply(conn, apply)
                await self._store.append(
                    attempt_stream(attempt.attempt_id),
                    [NewEvent(e, metadata=metadata) for e in events],
                    expected_version=1,
                    connection=conn,
                )
                await idempotency.finish(
                    conn,
                    attempt.key,
                    attempt_id=attempt.attempt_id,
                    status=key_status,
                    response_status=outcome.status_code or 200,
                    response_body=outcome.model_dump(mode="json"),
                    now=self._clock.now(),
                )
        except WrongExpectedVersion:
            # Another process (recovery) recorded this attempt's outcome first: answer with it.
            recorded = await self.outcome_of(attempt.attempt_id)
            if recorded is None:
                raise
            return recorded
        self._store.wake_subscribers()
        if self._observer is not None:
            self._observer(outcome)
        return outcome

    async def outcome_of(self, attempt_id: uuid.UUID) -> AttemptOutcome | None:
        """The attempt's outcome as the ledger has it; `pending` while in flight."""
        events = await self._store.read_stream(attempt_stream(attempt_id))
        if not events:
            return None
        return await outcome_from_events(self._pool, attempt_id, [e.event for e in events])

    def _metadata(self, correlation_id: str | None) -> EventMetadata:
        return EventMetadata(correlation_id=correlation_id, producer=self._holder)


def _as_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
