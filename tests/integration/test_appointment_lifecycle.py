"""An appointment follows its Cal.com booking whatever order Cal.com's news arrives in.

The property (STYLE.md 22, DESIGN.md §10): every interleaving of one booking's confirmation,
acceptance, decline, cancellations and reschedules — duplicates included — ends in the same
appointment row, applied live event by event and rebuilt by replay from a log in that order.
Scenarios are small, so every permutation is tried, not a sample.
"""

from __future__ import annotations

import dataclasses
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
from projections.appointments_replay import AppointmentsReplayer
from projections.rebuild import rebuild
from tests.integration.test_projector import horizon_passed

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


def lone_confirmation(n: int, status: Literal["booked", "pending"] = "pending") -> BookingConfirmed:
    """A confirmation of a uid no other event names: replay writes it in PostgreSQL."""
    appointment = uuid.UUID(int=10_000 + n)
    return confirmed(f"lone-{n}", status).model_copy(
        update={"appointment_id": appointment, "attempt_id": appointment, "call_id": f"lone-{n}"}
    )


async def replay_split(db: asyncpg.Pool, batch_size: int) -> AppointmentsReplayer:
    """Rebuild the appointments; return the replayer, to see which events took which path."""
    # Replay reads behind the transaction horizon, which is the whole server's: an event it
    # cannot see yet is applied by the catch-up after it instead, off the path being checked.
    await horizon_passed(db)
    made: list[AppointmentsReplayer] = []

    def replayer() -> AppointmentsReplayer:
        made.append(AppointmentsReplayer())
        return made[-1]

    projection = dataclasses.replace(appointments_replay.PROJECTION, replayer=replayer)
    await rebuild(db, projection, batch_size=batch_size)
    assert len(made) == 1
    return made[0]


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
            # Replay rebuilds the same row from a log written in this order, folded in memory
            # (its uid has more than one event), beside a lone confirmation PostgreSQL writes.
            await apply_live(db, store, [lone_confirmation(n)])
            live_all, live_states = await rows(db), await states(db)
            replayer = await replay_split(db, batch_size=2)
            assert await rows(db) == live_all, f"{name}: replay of order {n}"
            assert await states(db) == live_states, f"{name}: replay of order {n}"
            assert replayer.lone == 1
            assert {row[1] for row in replayer.fold.appointment_records()} == {final_uid}
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


def named_uids(event: Event) -> list[str]:
    """The booking uids an event names: the keys that relate one event to another."""
    return [
        uid
        for uid in (getattr(event, "booking_uid", None), getattr(event, "new_booking_uid", None))
        if uid is not None
    ]


@pytest.mark.parametrize("seed", range(6))
async def test_replay_writes_lone_uids_in_the_server_and_folds_the_rest(
    db: asyncpg.Pool, seed: int
) -> None:
    """One log, some uids lone (one confirmation, nothing else names them: PostgreSQL writes
    their rows) and some not (folded in memory): both tables, column by column, as the SQL
    functions wrote them live, and as the fold alone rebuilds them."""
    rng = random.Random(1000 + seed)
    shared = [f"S{n}" for n in range(5)]
    events: list[Event] = []
    for n in range(30):
        one = confirmed(f"L{seed}-{n}", rng.choice(["booked", "pending"]))
        appointment = uuid.UUID(int=20_000 + n)
        events.append(
            one.model_copy(
                update={
                    "appointment_id": appointment,
                    "attempt_id": uuid.UUID(int=30_000 + n),
                    "call_id": f"call-{n}\t\\N",
                    "booking_id": rng.choice([None, n, 2**40 + n]),
                    "event_type_id": rng.randrange(1, 10**12),
                    "start": at(rng.randrange(-(10**6), 10**6)) + timedelta(microseconds=n),
                    "end": rng.choice([None, at(rng.randrange(10**5))]),
                    "attendee_email": rng.choice([None, f"x{n}@example.com"]),
                    "attendee_name": rng.choice(["Ä Ö", "plain", 'quote " and \\ and \n']),
                    "confirmed_at": at(rng.randrange(50)) + timedelta(microseconds=7 * n),
                }
            )
        )
    for n in range(30):
        uid = rng.choice(shared)
        kind = rng.randrange(5)
        if kind == 0:
            appointment = uuid.UUID(int=40_000 + n)
            events.append(
                confirmed(uid, rng.choice(["booked", "pending"])).model_copy(
                    update={"appointment_id": appointment, "attempt_id": appointment}
                )
            )
        elif kind == 1:
            events.append(cancelled(uid, rng.randrange(1, 50)))
        elif kind == 2:
            events.append(BookingAccepted(booking_uid=uid, accepted_at=at(rng.randrange(50))))
        elif kind == 3:
            events.append(BookingDeclined(booking_uid=uid, declined_at=at(rng.randrange(50))))
        else:
            # Onto a shared uid or, now and then, a uid confirmed alone: then it is not lone.
            target = rng.choice([*shared, f"L{seed}-{rng.randrange(30)}"])
            events.append(moved(uid, target, rng.randrange(1, 50), rng.randrange(1, 5)))
    rng.shuffle(events)
    store = EventStore(db)
    await reset(db)
    written: list[Event] = []
    for event in events:
        try:
            await apply_live(db, store, [event])
            written.append(event)
        except (appointments.AppointmentExists, asyncpg.UniqueViolationError):
            pass  # refused live: rolled back with its append, so not in the log either
    live_rows, live_states = await rows(db), await states(db)

    names = [uid for event in written for uid in named_uids(event)]
    lone = {
        e.booking_uid
        for e in written
        if isinstance(e, BookingConfirmed) and names.count(e.booking_uid) == 1
    }
    assert 10 < len(lone) < len(live_rows)

    replayer = await replay_split(db, batch_size=rng.choice([1, 7, 1000]))
    assert replayer.lone == len(lone)
    folded = {row[13] for row in replayer.fold.appointment_records()}  # origin_uid
    assert folded and not folded & lone
    assert set(replayer.fold.states) & lone == set()
    for replayed, expected in [(await states(db), live_states), (await rows(db), live_rows)]:
        assert len(replayed) == len(expected)
        for got, want in zip(replayed, expected, strict=True):
            for column, value in want.items():
                assert (column, got[column]) == (column, value), got
    # The fold alone (the path before the split) rebuilds the same tables.
    await rebuild(db, appointments_replay.FOLD_ONLY, batch_size=1000)
    assert await rows(db) == live_rows
    assert await states(db) == live_states
    await store.close()
