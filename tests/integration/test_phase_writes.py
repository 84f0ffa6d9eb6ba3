"""Each write phase of an attempt is one statement: all of its rows land, or none does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from events.booking import BookingConfirmed, BookingFailed, attempt_stream
from events.errors import WrongExpectedVersion
from events.models import NewEvent
from events.store import EventStore
from projections import appointments
from service.booking import phase_writes
from tests.integration.test_event_store import bump

NOW = datetime(2025, 10, 10, 7, 0, tzinfo=UTC)


@pytest.fixture
def store(db: asyncpg.Pool) -> EventStore:
    return EventStore(db)


async def claim_seeing(
    db: asyncpg.Pool,
    store: EventStore,
    key: str,
    attempt_id: uuid.UUID,
    *,
    call_id: str = "call-none",
    start: datetime = NOW,
) -> phase_writes.Claim:
    return await phase_writes.claim(
        db,
        key,
        fingerprint="f",
        attempt_id=attempt_id,
        holder="test",
        now=NOW,
        stream_id=attempt_stream(attempt_id),
        intent=store.encode(bump()),
        call_id=call_id,
        event_type_id=1001,
        start=start,
    )


async def claim(db: asyncpg.Pool, store: EventStore, key: str, attempt_id: uuid.UUID) -> bool:
    return (await claim_seeing(db, store, key, attempt_id)).claimed


def confirmation(attempt_id: uuid.UUID, booking_uid: str) -> BookingConfirmed:
    return BookingConfirmed(
        attempt_id=attempt_id,
        appointment_id=attempt_id,
        call_id=f"call-{attempt_id.hex[:6]}",
        booking_uid=booking_uid,
        event_type_id=1001,
        start=datetime(2025, 10, 10, 8, 0, tzinfo=UTC),
        attendee_name="Hansi Sputer",
        confirmed_at=NOW,
    )


async def record(
    db: asyncpg.Pool, store: EventStore, attempt_id: uuid.UUID, confirmed: BookingConfirmed
) -> int:
    return await phase_writes.record(
        db,
        stream_id=attempt_stream(attempt_id),
        expected_version=1,
        events=[store.encode(NewEvent(confirmed))],
        key=f"key-{attempt_id}",
        attempt_id=attempt_id,
        key_status="finished",
        response_body={"status": "confirmed"},
        now=NOW,
        confirmed=confirmed,
    )


async def key_row(db: asyncpg.Pool, key: str) -> dict[str, Any]:
    row = await db.fetchrow("SELECT status FROM idempotency_keys WHERE key = $1", key)
    assert row is not None
    return dict(row)


async def test_a_claim_writes_the_key_and_the_intent_or_nothing(
    db: asyncpg.Pool, store: EventStore
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    assert await claim(db, store, "key-1", first)
    assert [e.version for e in await store.read_stream(attempt_stream(first))] == [1]
    # The key exists: the second claim writes neither a key nor an intent.
    assert not await claim(db, store, "key-1", second)
    assert await store.read_stream(attempt_stream(second)) == []
    assert await db.fetchval("SELECT attempt_id FROM idempotency_keys WHERE key = 'key-1'") == first


async def test_a_confirmation_lands_with_its_appointment_and_its_answer(
    db: asyncpg.Pool, store: EventStore
) -> None:
    attempt = uuid.uuid4()
    await claim(db, store, f"key-{attempt}", attempt)
    assert await record(db, store, attempt, confirmation(attempt, "uid-1")) == 2
    assert await appointments.by_booking_uid(db, "uid-1") is not None
    assert (await key_row(db, f"key-{attempt}"))["status"] == "finished"


async def test_a_confirmation_the_unique_index_refuses_leaves_nothing_behind(
    db: asyncpg.Pool, store: EventStore
) -> None:
    winner, loser = uuid.uuid4(), uuid.uuid4()
    for attempt in (winner, loser):
        await claim(db, store, f"key-{attempt}", attempt)
    await record(db, store, winner, confirmation(winner, "uid-1"))
    with pytest.raises(appointments.AppointmentExists):
        await record(db, store, loser, confirmation(loser, "uid-1"))
    assert [e.version for e in await store.read_stream(attempt_stream(loser))] == [1]
    assert (await key_row(db, f"key-{loser}"))["status"] == "in_flight"


async def test_an_outcome_recorded_first_elsewhere_undoes_the_whole_statement(
    db: asyncpg.Pool, store: EventStore
) -> None:
    attempt = uuid.uuid4()
    await claim(db, store, f"key-{attempt}", attempt)
    # Recovery recorded a failure first.
    failed = BookingFailed(
        attempt_id=attempt, call_id="c", reason="timeout", retryable=True, failed_at=NOW
    )
    await store.append(attempt_stream(attempt), [NewEvent(failed)], expected_version=1)
    with pytest.raises(WrongExpectedVersion) as moved:
        await record(db, store, attempt, confirmation(attempt, "uid-1"))
    assert moved.value.actual == 2
    assert await appointments.by_booking_uid(db, "uid-1") is None
    assert (await key_row(db, f"key-{attempt}"))["status"] == "in_flight"


async def test_the_claim_reads_the_calls_live_appointment_for_the_slot(
    db: asyncpg.Pool, store: EventStore
) -> None:
    # One round trip for both: the key and intent written, the call's appointment read.
    first = uuid.uuid4()
    await claim(db, store, f"key-{first}", first)
    confirmed = confirmation(first, "uid-held")
    await record(db, store, first, confirmed)

    second = uuid.uuid4()
    seen = await claim_seeing(
        db, store, "key-2", second, call_id=confirmed.call_id, start=confirmed.start
    )
    assert seen.claimed
    assert seen.held is not None
    assert seen.held["appointment_id"] == first
    assert seen.held["booking_uid"] == "uid-held"
    assert set(seen.held) == set(appointments.COLUMNS)
    assert seen.held == await appointments.held_by_call(
        db, confirmed.call_id, 1001, confirmed.start
    )

    # Another call, or another start: nothing held; an existing key: nothing written.
    other = await claim_seeing(db, store, "key-3", uuid.uuid4(), call_id="call-other")
    assert other.claimed and other.held is None
    again = await claim_seeing(
        db, store, "key-2", uuid.uuid4(), call_id=confirmed.call_id, start=confirmed.start
    )
    assert not again.claimed and again.held is not None

    # A cancelled appointment is not live: not held.
    await db.execute(
        "UPDATE appointments SET status = 'cancelled' WHERE appointment_id = $1", first
    )
    gone = await claim_seeing(
        db, store, "key-4", uuid.uuid4(), call_id=confirmed.call_id, start=confirmed.start
    )
    assert gone.claimed and gone.held is None
