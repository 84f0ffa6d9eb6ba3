"""The booking workflow on its own: real PostgreSQL, the simulator on loopback, a fake clock.

No app and no HTTP (STYLE.md 19): these tests build `BookingWorkflow` as the composition root
does and drive it directly, so the exactly-once core is proven without its edge; the e2e tests
then only prove the wiring.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from events.store import EventStore
from service.booking.appointment_lookup import PoolAppointmentLookup
from service.booking.attempt import AttemptInFlight, BookingResult, ClaimedAttempt
from service.booking.clock import FakeClock
from service.booking.guards import default_guards
from service.booking.models import BookingRequest
from service.booking.workflow import BookingWorkflow
from service.calcom.client import HttpCalcomClient
from service.calcom.port import CalcomBooking, CreateBooking
from service.calcom.simulator.server import CalcomSimulator
from service.calcom.wiring import serve_simulator

INCIDENT_MORNING = datetime(2025, 10, 6, 9, 4, 27, tzinfo=UTC)
SLOT = "2025-10-10T06:00:00Z"
CALL_687 = "call_927bf219b2cc20cd24dc97c9f0b"
CALL_688 = "call_39d2ade6f4fc16c51110ca49cdf"
RETURNS_EXISTING = 1001
PLAIN = 1002
GRACE = timedelta(seconds=150)


@dataclass
class World:
    pool: asyncpg.Pool
    store: EventStore
    simulator: CalcomSimulator
    calcom: HttpCalcomClient
    clock: FakeClock

    def workflow(self, holder: str = "test:1") -> BookingWorkflow:
        """A workflow as service/app.py builds it, with the default guards."""
        return BookingWorkflow(
            pool=self.pool,
            store=self.store,
            calcom=self.calcom,
            clock=self.clock,
            guards=default_guards(
                max_age=timedelta(seconds=30), lookup=PoolAppointmentLookup(self.pool)
            ),
            in_flight_grace=GRACE,
            holder=holder,
        )

    async def outcome_events(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT type FROM events WHERE type IN"
            " ('BookingConfirmed', 'BookingRejected', 'BookingFailed') ORDER BY position"
        )
        return [row["type"] for row in rows]


@pytest.fixture
async def world(db: asyncpg.Pool) -> AsyncIterator[World]:
    clock = FakeClock(INCIDENT_MORNING)
    simulator = CalcomSimulator(now=clock.now)
    store = EventStore(db)
    async with AsyncExitStack() as stack:
        base_url = await stack.enter_async_context(serve_simulator(simulator))
        calcom = await stack.enter_async_context(
            HttpCalcomClient(
                api_key="cal_test",
                base_url=base_url,
                total_timeout=0.5,
                max_attempts=2,
                backoff_base=0.01,
                backoff_max=0.02,
            )
        )
        yield World(db, store, simulator, calcom, clock)
        await store.close()


def request(
    call_id: str = CALL_687,
    *,
    email: str = "termin@example.com",
    event_type_id: int = RETURNS_EXISTING,
    start: str = SLOT,
) -> BookingRequest:
    return BookingRequest.model_validate(
        {
            "call_id": call_id,
            "event_type_id": event_type_id,
            "start": start,
            "attendee": {"name": "Hansi Sputer", "email": email, "time_zone": "Europe/Berlin"},
        }
    )


async def test_the_incident_confirms_call_687_and_refuses_call_688(world: World) -> None:
    workflow = world.workflow()
    first = await workflow.book(request(CALL_687))
    assert first.outcome.status == "confirmed" and not first.outcome.held
    assert first.outcome.appointment is not None

    # 35 minutes later, the same slot with the same shared e-mail: Cal.com hands back 687's.
    world.clock.advance(timedelta(minutes=35))
    second = await workflow.book(request(CALL_688))

    assert second.outcome.status == "rejected"
    assert second.outcome.guard == "freshness" and second.outcome.reason == "stale_booking"
    rows = await world.pool.fetch("SELECT call_id FROM appointments")
    assert [row["call_id"] for row in rows] == [CALL_687]
    assert len(world.simulator.ledger.bookings) == 1


async def test_a_live_attempt_in_flight_is_answered_attempt_in_flight(world: World) -> None:
    workflow = world.workflow()
    claimed = await workflow.claim(request(), idempotency_key="key-live")
    assert isinstance(claimed, ClaimedAttempt)

    # Well inside the grace period the holder counts as alive: never taken over.
    world.clock.advance(GRACE - timedelta(seconds=1))
    with pytest.raises(AttemptInFlight) as raised:
        await world.workflow(holder="test:2").claim(request(), idempotency_key="key-live")

    assert raised.value.attempt_id == claimed.attempt_id
    assert raised.value.retry_after >= 1
    assert await world.store.stream_version(f"attempt-{claimed.attempt_id}") == 1
    assert not [r for r in world.simulator.requests if r.method == "POST"]


async def test_a_retryable_failure_then_a_keyed_retry_books_once(world: World) -> None:
    workflow = world.workflow()
    # Cal.com writes the booking, then every answer is lost: the attempt fails, retryable.
    world.simulator.add_faults("drop_after_write@create", "503@find", "503@find")
    failed = await workflow.book(request(event_type_id=PLAIN), idempotency_key="key-retry")
    assert failed.outcome.status == "failed" and failed.outcome.retryable
    assert len(world.simulator.ledger.bookings) == 1

    world.simulator.faults.clear()
    retried = await workflow.book(request(event_type_id=PLAIN), idempotency_key="key-retry")

    # The retry is a new attempt that finds attempt 1's booking instead of booking again.
    assert retried.outcome.status == "confirmed", retried.outcome
    assert retried.outcome.attempt_id != failed.outcome.attempt_id
    assert len(world.simulator.ledger.bookings) == 1
    assert await world.outcome_events() == ["BookingFailed", "BookingConfirmed"]
    again = await workflow.book(request(event_type_id=PLAIN), idempotency_key="key-retry")
    assert again.replayed and again.outcome == retried.outcome


async def test_recovery_confirms_the_booking_of_an_orphaned_attempt(world: World) -> None:
    dead = world.workflow(holder="dead:1")
    claimed = await dead.claim(request(), idempotency_key="key-orphan")
    assert isinstance(claimed, ClaimedAttempt)
    # The dead process booked in Cal.com, then died before recording anything.
    await world.calcom.create_booking(claimed.attempt.create_request())

    survivor = world.workflow(holder="alive:1")
    assert await survivor.recover_stale() == []  # not stale yet
    world.clock.advance(GRACE + timedelta(seconds=1))
    recovered = await survivor.recover_stale()

    assert [(o.attempt_id, o.status) for o in recovered] == [(claimed.attempt_id, "confirmed")]
    assert len(world.simulator.ledger.bookings) == 1
    answer = await survivor.book(request(), idempotency_key="key-orphan")
    assert answer.replayed and answer.outcome.status == "confirmed"


async def test_two_drivers_of_one_attempt_record_exactly_one_outcome(world: World) -> None:
    first = world.workflow(holder="first:1")
    claimed = await first.claim(request(event_type_id=PLAIN), idempotency_key="key-race")
    assert isinstance(claimed, ClaimedAttempt)
    # A second process takes the same attempt over (as recovery would) and drives it too.
    second = world.workflow(holder="second:1")
    taken = ClaimedAttempt(claimed.attempt, reconcile=True)

    outcomes = await asyncio.gather(first.drive(claimed), second.drive(taken))

    assert await world.outcome_events() == ["BookingConfirmed"]
    assert {o.status for o in outcomes} == {"confirmed"}
    assert outcomes[0].attempt_id == outcomes[1].attempt_id == claimed.attempt_id
    stored = await world.pool.fetch("SELECT attempt_id FROM appointments")
    assert [row["attempt_id"] for row in stored] == [claimed.attempt_id]
    replay = await first.book(request(event_type_id=PLAIN), idempotency_key="key-race")
    assert isinstance(replay, BookingResult) and replay.replayed


async def test_a_late_driver_answers_with_the_outcome_already_recorded(world: World) -> None:
    first = world.workflow(holder="first:1")
    claimed = await first.claim(request(event_type_id=PLAIN), idempotency_key="key-late")
    assert isinstance(claimed, ClaimedAttempt)
    confirmed = await first.drive(claimed)
    assert confirmed.status == "confirmed"

    # A second driver of the same attempt (taken over while the first seemed dead) finishes
    # later with a different verdict: Cal.com failed it. Its outcome is written after the
    # intent (expected version 1) or not at all, so it answers with the recorded one.
    world.simulator.add_faults("503@find", "503@find")
    late = await world.workflow(holder="second:1").drive(ClaimedAttempt(claimed.attempt, True))

    assert late.status == "confirmed" and late.attempt_id == claimed.attempt_id
    assert await world.outcome_events() == ["BookingConfirmed"]


class MovedCalcom:
    """A Cal.com port that books every request an hour later than asked (for slot_match)."""

    def __init__(self) -> None:
        self.cancelled: list[tuple[str, str | None]] = []
        self.booking: CalcomBooking | None = None

    async def create_booking(self, request: CreateBooking) -> CalcomBooking:
        start = request.start + timedelta(hours=1)
        self.booking = CalcomBooking.from_calcom(
            {
                "id": 7,
                "uid": "movedUid1",
                "status": "accepted",
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=30)).isoformat(),
                "createdAt": INCIDENT_MORNING.isoformat(),
                "metadata": request.metadata,
                "attendees": [{"name": request.attendee_name, "email": request.attendee_email}],
            }
        )
        return self.booking

    async def find_bookings(
        self, *, attendee_email: str, event_type_id: int, start: datetime
    ) -> list[CalcomBooking]:
        return []

    async def get_booking(self, uid: str) -> CalcomBooking:
        assert self.booking is not None
        return self.booking

    async def cancel_booking(self, uid: str, *, reason: str | None = None) -> CalcomBooking:
        self.cancelled.append((uid, reason))
        assert self.booking is not None
        return self.booking.model_copy(update={"status": "cancelled"})

    async def list_bookings(
        self, *, created_after: datetime, created_before: datetime | None = None, take: int = 100
    ) -> list[CalcomBooking]:
        return []


async def test_a_booking_of_ours_that_a_guard_refuses_is_cancelled_not_left_live(
    world: World,
) -> None:
    calcom = MovedCalcom()
    workflow = BookingWorkflow(
        pool=world.pool,
        store=world.store,
        calcom=calcom,
        clock=world.clock,
        guards=default_guards(
            max_age=timedelta(seconds=30), lookup=PoolAppointmentLookup(world.pool)
        ),
        holder="test:1",
    )

    result = await workflow.book(request(event_type_id=PLAIN))

    assert (result.outcome.status, result.outcome.reason) == ("rejected", "slot_mismatch")
    assert [uid for uid, _ in calcom.cancelled] == ["movedUid1"]
    assert "slot_mismatch" in (calcom.cancelled[0][1] or "")
    types = await world.pool.fetch("SELECT type FROM events ORDER BY position")
    assert "OrphanBookingCancelled" in [row["type"] for row in types]


async def test_two_keys_of_one_call_in_two_processes_make_one_booking_and_two_answers(
    world: World,
) -> None:
    # Two workflows share nothing in memory, as two processes would. The first create takes
    # effect and then hangs until the client gives up and asks again, so the other attempt
    # meets the taken slot before the first has recorded anything.
    world.simulator.add_faults("timeout_after_write@create")
    first, second = world.workflow(holder="p1:1"), world.workflow(holder="p2:1")

    results = await asyncio.gather(
        first.book(request(event_type_id=PLAIN), idempotency_key="key-p1"),
        second.book(request(event_type_id=PLAIN), idempotency_key="key-p2"),
    )

    outcomes = [r.outcome for r in results]
    assert sorted((o.status, o.held) for o in outcomes) == [
        ("confirmed", False),
        ("confirmed", True),
    ], outcomes
    assert len(world.simulator.ledger.bookings) == 1
    uids = {o.appointment.booking_uid for o in outcomes if o.appointment is not None}
    assert len(uids) == 1
    assert await world.outcome_events() == ["BookingConfirmed"]
    assert (
        await world.pool.fetchval("SELECT count(*) FROM events WHERE type = 'BookingAlreadyHeld'")
        == 1
    )
