"""The audit endpoints against a real PostgreSQL, through aiohttp's test client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from events.booking import (
    Attendee,
    BookingConfirmed,
    BookingRejected,
    BookingRequested,
    BookingRescheduled,
    CalcomBookingReceived,
    attempt_stream,
)
from events.models import Event, NewEvent
from events.store import EventStore
from projections import rejections
from projections.projectors import run_projectors
from service.api.audit import add_audit_routes
from service.api.keys import POOL, STORE
from tests.integration.test_projector import horizon_passed, last_appended

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
Client = TestClient[Any, Any]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def book(
    store: EventStore, call_id: str, minute: float, *, outcome: str, booked_by: str = ""
) -> None:
    """One attempt of the incident: requested, Cal.com's answer (uid-687), then its outcome."""
    attempt = uuid.uuid4()
    owner = booked_by or call_id
    events: list[Event] = [
        BookingRequested(
            attempt_id=attempt,
            call_id=call_id,
            event_type_id=7,
            start=at(24 * 60),
            attendee=Attendee(name="Hansi Sputer", email="termin@example.com", time_zone="UTC"),
            idempotency_key=f"key-{call_id}",
            fingerprint="f" * 64,
            requested_at=at(minute),
        ),
        CalcomBookingReceived(
            attempt_id=attempt,
            call_id=call_id,
            booking_uid="uid-687",
            created_at=at(10),
            booking_metadata={"call_id": owner},
            first_called_at=at(minute),
            received_at=at(minute),
        ),
    ]
    if outcome == "confirmed":
        events.append(
            BookingConfirmed(
                attempt_id=attempt,
                appointment_id=uuid.uuid4(),
                call_id=call_id,
                booking_uid="uid-687",
                event_type_id=7,
                start=at(24 * 60),
                attendee_name="Hansi Sputer",
                confirmed_at=at(minute),
            )
        )
    else:
        events.append(
            BookingRejected(
                attempt_id=attempt,
                call_id=call_id,
                guard="call_identity",
                layer=2,
                reason="call_id_mismatch",
                detail={"booking_call_id": owner},
                booking_uid="uid-687",
                rejected_at=at(minute),
            )
        )
    for n, event in enumerate(events):
        await store.append(attempt_stream(attempt), [NewEvent(event)], expected_version=n)


async def record_incident(store: EventStore, db: asyncpg.Pool) -> None:
    """Call 687 books uid-687; 35 minutes later Cal.com hands uid-687 to call 688."""
    await book(store, "687", 10, outcome="confirmed")
    await book(store, "688", 45, outcome="rejected", booked_by="687")
    await horizon_passed(db)


@pytest.fixture
def store(db: asyncpg.Pool) -> EventStore:
    return EventStore(db)


@pytest.fixture
async def client(db: asyncpg.Pool, store: EventStore) -> AsyncIterator[Client]:
    app = web.Application()
    app[POOL] = db
    app[STORE] = store
    add_audit_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield client


async def get(client: Client, path: str, status: int = 200) -> Any:
    response = await client.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def test_call_timeline_lists_the_calls_events_in_order(
    client: Client, db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    body = await get(client, "/v1/calls/688/events")
    assert [e["type"] for e in body["events"]] == [
        "BookingRequested",
        "CalcomBookingReceived",
        "BookingRejected",
    ]
    assert body["next"] is None
    first = body["events"][0]
    assert set(first) == {
        *("position", "cursor", "stream_id", "version", "event_id", "type"),
        *("schema_version", "data", "metadata", "recorded_at"),
    }
    assert first["data"]["call_id"] == "688"
    assert first["cursor"].endswith(f".{first['position']}")
    assert first["recorded_at"].endswith("Z")
    assert body["events"][2]["data"]["reason"] == "call_id_mismatch"


async def test_booking_history_holds_every_call_that_touched_the_booking(
    client: Client, db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    body = await get(client, "/v1/calcom-bookings/uid-687/events")
    assert [(e["data"]["call_id"], e["type"]) for e in body["events"]] == [
        ("687", "CalcomBookingReceived"),
        ("687", "BookingConfirmed"),
        ("688", "CalcomBookingReceived"),
        ("688", "BookingRejected"),
    ]
    moved = BookingRescheduled(
        booking_uid="uid-687", new_booking_uid="uid-new", start=at(2000), rescheduled_at=at(50)
    )
    await store.append("calcom-uid-687", [NewEvent(moved)], expected_version=0)
    await horizon_passed(db)
    assert len((await get(client, "/v1/calcom-bookings/uid-687/events"))["events"]) == 5
    [renamed] = (await get(client, "/v1/calcom-bookings/uid-new/events"))["events"]
    assert renamed["type"] == "BookingRescheduled"


async def test_pages_follow_next_until_the_last_without_gaps(
    client: Client, db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    for path, total in [
        ("/v1/events?limit=2", 6),
        ("/v1/calls/687/events?limit=2", 3),
        ("/v1/calcom-bookings/uid-687/events?limit=3", 4),
    ]:
        seen: list[int] = []
        page = await get(client, path)
        while True:
            seen.extend(e["position"] for e in page["events"])
            if page["next"] is None:
                break
            assert page["next"] == page["events"][-1]["cursor"]
            page = await get(client, f"{path}&after={page['next']}")
        assert len(seen) == total == len(set(seen)), path


async def test_feed_filters_by_type(client: Client, db: asyncpg.Pool, store: EventStore) -> None:
    await record_incident(store, db)
    body = await get(client, "/v1/events?type=BookingConfirmed,BookingRejected&after=0")
    assert [e["type"] for e in body["events"]] == ["BookingConfirmed", "BookingRejected"]
    body = await get(client, "/v1/events?type=BookingConfirmed&type=BookingRequested")
    assert len(body["events"]) == 3


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("/v1/events?after=12", "after"),
        ("/v1/events?after=x.y", "after"),
        ("/v1/events?limit=0", "limit"),
        ("/v1/events?limit=1001", "limit"),
        ("/v1/events?limit=ten", "limit"),
        ("/v1/events?type=NoSuchEvent", "type"),
        ("/v1/calls/687/events?after=-1", "after"),
        ("/v1/calcom-bookings/uid-687/events?limit=-5", "limit"),
        ("/v1/rejections?from=yesterday", "from"),
        ("/v1/rejections?to=2025-03-01T10:00:00", "to"),
        ("/v1/rejections?from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z", "from"),
        ("/v1/rejections?after=soon", "after"),
    ],
)
async def test_a_query_that_cannot_be_read_is_a_422_naming_it(
    client: Client, query: str, names: str
) -> None:
    body = await get(client, query, status=422)
    assert body["error"] == "invalid_query"
    assert names in body["detail"]


async def test_rejections_over_a_range_with_reason_counts(
    client: Client, db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    await book(store, "689", 50, outcome="rejected", booked_by="687")
    await book(store, "690", 60 * 30, outcome="rejected", booked_by="687")  # outside the range
    async with run_projectors(db, store, [rejections.PROJECTION], poll_interval=0.02) as running:
        await running["rejections"].wait_for(await last_appended(db))
    query = "/v1/rejections?from=2025-03-01T09:00:00Z&to=2025-03-01T10:00:00Z"
    body = await get(client, f"{query}&limit=1")
    assert body["counts"] == [{"guard": "call_identity", "reason": "call_id_mismatch", "count": 2}]
    assert [r["call_id"] for r in body["rejections"]] == ["688"]
    assert body["rejections"][0]["rejected_at"] == "2025-03-01T09:45:00Z"
    body = await get(client, f"{query}&limit=1&after={body['next']}")
    assert [r["call_id"] for r in body["rejections"]] == ["689"]
    body = await get(client, f"{query}&limit=1&after={body['next']}")
    assert (body["rejections"], body["next"]) == ([], None)
