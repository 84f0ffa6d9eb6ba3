"""An appointment follows its Cal.com booking whatever order Cal.com's news arrives in.

The property (STYLE.md 22, DESIGN.md §10): every interleaving of one booking's confirmation,
acceptance, decline, cancellations and reschedules — duplicates included — ends in the same
appointment row, applied live event by event and rebuilt by replay from a log in that order.
Scenarios are small, so every permutation is tried, not a sample.
"""

from __future__ import annotations

import itertools
import random
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


async def states(db: asyncpg.Pool) -> list[dict[str, Any]]:
    found = await db.fetch("SELECT * FROM booking_states ORDER BY booking_uid")
    return [dict(row) for row in found]


@pytest.mark.parametrize("seed", range(6))
async def test_replay_folds_random_histories_as_the_functions_do(
    db: asyncpg.Pool, seed: int
) -> None:
    """Replay folds the log in memory (projections/appointments_replay.py): whatever the log,
    both tables end as the SQL functions left them live, facts before confirmations, chains of
    reschedules, reschedules onto known uids and repeated facts included."""
    rng = random.Random(seed)
    uids = [f"U{n}" for n in range(8)]
    store = EventStore(db)
    await reset(db)
    events: list[Event] = []
    for _ in range(60):
        uid = rng.choice(uids)
        minute = rng.randrange(1, 50)
        kind = rng.randrange(6)
        if kind == 0:
            appointment = uuid.UUID(int=rng.randrange(1, 12))
            events.append(
                confirmed(uid, rng.choice(["booked", "pending"])).model_copy(
                    update={
                        "appointment_id": appointment,
                        "attempt_id": appointment,
                        "confirmed_at": at(minute),
                    }
                )
            )
        elif kind == 1:
            events.append(cancelled(uid, minute))
        elif kind == 2:
            events.append(BookingAccepted(booking_uid=uid, accepted_at=at(minute)))
        elif kind == 3:
            events.append(BookingDeclined(booking_uid=uid, reason="busy", declined_at=at(minute)))
        else:
            events.append(moved(uid, rng.choice(uids), minute, rng.randrange(1, 5)))
    written = 0
    for event in events:
        try:
            await apply_live(db, store, [event])
            written += 1
        except (appointments.AppointmentExists, asyncpg.UniqueViolationError):
            pass  # refused live: rolled back with its append, so not in the log either
    live_rows, live_states = await rows(db), await states(db)
    assert written > 20
    await rebuild(db, appointments_replay.PROJECTION, batch_size=rng.choice([1, 7, 1000]))
    assert await states(db) == live_states
    assert await rows(db) == live_rows
    await store.close()
