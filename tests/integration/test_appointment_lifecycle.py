"""An appointment follows its Cal.com booking whatever order Cal.com's news arrives in.

The property (STYLE.md 22, DESIGN.md §10): every interleaving of one booking's confirmation,
acceptance, decline, cancellations and reschedules — duplicates included — ends in the same
appointment row, applied live event by event and rebuilt by replay from a log in that order.
Scenarios are small, so every permutation is tried, not a sample.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg
import pytest

from events.booking import (
    BookingAccepted,
    BookingCancelled,
    BookingConfirmed,
    BookingDeclined,
    BookingRescheduled,
)
from events.models import Event, NewEvent
from events.store import EventStore, ExpectedVersion
from projections import appointments, appointments_replay
from projections.rebuild import rebuild

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
APPOINTMENT = uuid.UUID("7a2c6a7e-0000-4000-8000-000000000001")


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def confirmed(uid: str, status: Literal["booked", "pending"] = "booked") -> BookingConfirmed:
    return BookingConfirmed(
        attempt_id=APPOINTMENT,
        appointment_id=APPOINTMENT,
        call_id="call-1",
        booking_uid=uid,
        booking_id=1,
        event_type_id=1001,
        start=at(24 * 60),
        end=at(24 * 60 + 30),
        attendee_name="Hansi Sputer",
        attendee_email="termin+call-1@example.com",
        confirmed_at=at(0),
        status=status,
    )


def cancelled(uid: str, minute: int) -> BookingCancelled:
    return BookingCancelled(booking_uid=uid, reason="attendee", cancelled_at=at(minute))


def moved(uid: str, new_uid: str, minute: int, day: int) -> BookingRescheduled:
    return BookingRescheduled(
        booking_uid=uid,
        new_booking_uid=new_uid,
        start=at(day * 24 * 60),
        end=at(day * 24 * 60 + 30),
        rescheduled_at=at(minute),
    )


# (events, the appointment's final uid and status)
SCENARIOS: dict[str, tuple[list[Event], str, str]] = {
    "cancelled": ([confirmed("A"), cancelled("A", 5), cancelled("A", 5)], "A", "cancelled"),
    "accepted then cancelled": (
        [
            confirmed("A", "pending"),
            BookingAccepted(booking_uid="A", accepted_at=at(3)),
            cancelled("A", 9),
        ],
        "A",
        "cancelled",
    ),
    "accepted": (
        [confirmed("A", "pending"), BookingAccepted(booking_uid="A", accepted_at=at(3))],
        "A",
        "booked",
    ),
    "declined": (
        [
            confirmed("A", "pending"),
            BookingDeclined(booking_uid="A", reason="busy", declined_at=at(4)),
        ],
        "A",
        "declined",
    ),
    "moved twice, the last cancelled": (
        [confirmed("A"), moved("A", "B", 3, 2), moved("B", "C", 6, 3), cancelled("C", 8)],
        "C",
        "cancelled",
    ),
    "moved, the new one cancelled twice": (
        [confirmed("A"), moved("A", "B", 3, 2), cancelled("B", 7), cancelled("B", 7)],
        "B",
        "cancelled",
    ),
    "pending, accepted, moved": (
        [
            confirmed("A", "pending"),
            BookingAccepted(booking_uid="A", accepted_at=at(2)),
            moved("A", "B", 5, 4),
        ],
        "B",
        "booked",
    ),
}


async def reset(db: asyncpg.Pool) -> None:
    await db.execute("TRUNCATE events, appointments, booking_states RESTART IDENTITY")


async def rows(db: asyncpg.Pool) -> list[dict[str, Any]]:
    found = await db.fetch("SELECT * FROM appointments ORDER BY appointment_id")
    return [dict(row) for row in found]


async def apply_live(db: asyncpg.Pool, store: EventStore, events: Sequence[Event]) -> None:
    """Each event in its own transaction, appended and applied as the service does."""
    for event in events:
        async with db.acquire() as conn, conn.transaction():
            await appointments.apply(conn, event)
            await store.append(
                f"test-{uuid.uuid4()}",
                [NewEvent(event)],
                expected_version=ExpectedVersion.NO_STREAM,
                connection=conn,
            )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_order_of_a_bookings_news_ends_in_the_same_row(
    db: asyncpg.Pool, name: str
) -> None:
    events, final_uid, final_status = SCENARIOS[name]
    store = EventStore(db)
    seen: dict[str, list[dict[str, Any]]] = {}
    for n, order in enumerate(itertools.permutations(events)):
        await reset(db)
        await apply_live(db, store, order)
        live = await rows(db)
        assert [(r["booking_uid"], r["status"]) for r in live] == [(final_uid, final_status)], (
            f"{name}: order {[type(e).__name__ for e in order]}"
        )
        seen.setdefault(repr(live), []).append({"order": [type(e).__name__ for e in order]})
        if n % 5 == 0:
            # Replay rebuilds the same row from a log written in this order.
            await rebuild(db, appointments_replay.PROJECTION, batch_size=2)
            assert await rows(db) == live, f"{name}: replay of order {n}"
    assert len(seen) == 1, f"{name}: {len(seen)} different rows: {list(seen.values())[:2]}"
    await store.close()
