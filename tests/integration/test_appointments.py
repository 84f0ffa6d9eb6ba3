"""The appointments projection's last line: the unique index on the Cal.com booking uid."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from events.booking import BookingCancelled, BookingConfirmed, BookingRescheduled
from projections import appointments

SLOT = datetime(2025, 10, 10, 6, 0, tzinfo=UTC)


def confirmed(call_id: str, booking_uid: str = "uid-1") -> BookingConfirmed:
    attempt_id = uuid.uuid4()
    return BookingConfirmed(
        attempt_id=attempt_id,
        appointment_id=attempt_id,
        call_id=call_id,
        booking_uid=booking_uid,
        booking_id=1,
        event_type_id=1001,
        start=SLOT,
        attendee_name="Hansi Sputer",
        attendee_email="termin@example.com",
        confirmed_at=SLOT,
    )


async def test_the_unique_constraint_refuses_a_duplicate_insert(db: asyncpg.Pool) -> None:
    await appointments.apply(db, confirmed("call-687"))
    with pytest.raises(appointments.AppointmentExists) as refused:
        await appointments.apply(db, confirmed("call-688"))
    assert refused.value.booking_uid == "uid-1"
    assert isinstance(refused.value.__cause__, asyncpg.UniqueViolationError)
    rows = await db.fetch("SELECT call_id FROM appointments")
    assert [r["call_id"] for r in rows] == ["call-687"]


async def test_cancel_and_reschedule_keep_one_row_per_booking(db: asyncpg.Pool) -> None:
    await appointments.apply(db, confirmed("call-687"))
    moved = SLOT.replace(hour=7)
    await appointments.apply(
        db,
        BookingRescheduled(
            booking_uid="uid-1", new_booking_uid="uid-2", start=moved, rescheduled_at=SLOT
        ),
    )
    row = await appointments.by_booking_uid(db, "uid-2")
    assert row is not None
    assert row["start_at"] == moved
    assert await appointments.by_booking_uid(db, "uid-1") is None
    await appointments.apply(db, BookingCancelled(booking_uid="uid-2", cancelled_at=SLOT))
    rows = await db.fetch("SELECT booking_uid, status FROM appointments")
    assert [(r["booking_uid"], r["status"]) for r in rows] == [("uid-2", "cancelled")]


async def test_only_known_tables_may_be_written(db: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="unknown appointments table"):
        await appointments.apply(db, confirmed("call-1"), table="events")
