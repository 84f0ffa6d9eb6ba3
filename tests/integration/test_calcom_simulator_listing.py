"""`GET /v2/bookings` for reconciliation: the simulator's filters and pagination, and the client
paging through every booking created in a window."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from service.calcom.client import HttpCalcomClient
from service.calcom.port import CalcomBooking, to_calcom_time
from service.calcom.simulator.event_types import (
    CONFIRMATION_EVENT_TYPE_ID,
    INCIDENT_EVENT_TYPE_ID,
    PLAIN_EVENT_TYPE_ID,
)
from service.calcom.simulator.server import CalcomSimulator
from tests.integration.test_calcom_simulator import BOOKED_687, SLOT, VERSION, Clock, request

MINUTE = timedelta(minutes=1)


def at(moment: datetime) -> str:
    """A query-string time as Cal.com writes it (milliseconds: BOOKED_687 has some)."""
    return to_calcom_time(moment)


@pytest.fixture
def clock() -> Clock:
    return Clock(BOOKED_687)


@pytest.fixture
async def sim(clock: Clock) -> CalcomSimulator:
    return CalcomSimulator(now=clock)


@pytest.fixture
async def server(sim: CalcomSimulator) -> AsyncIterator[TestServer]:
    test_server = TestServer(sim.app)
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[HttpCalcomClient]:
    origin = str(server.make_url("/")).rstrip("/")
    async with HttpCalcomClient(api_key="cal_test_key", base_url=origin) as calcom:
        yield calcom


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    origin = str(server.make_url("/")).rstrip("/")
    async with aiohttp.ClientSession(base_url=origin, headers=VERSION) as session:
        yield session


async def one_of_each(client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock) -> list[str]:
    """Five bookings a minute apart: accepted, pending, rejected, cancelled, rescheduled away."""
    uids = []
    for n, event_type in enumerate(
        [PLAIN_EVENT_TYPE_ID, CONFIRMATION_EVENT_TYPE_ID, CONFIRMATION_EVENT_TYPE_ID]
        + [PLAIN_EVENT_TYPE_ID] * 2
    ):
        clock.now = BOOKED_687 + n * MINUTE
        booked = await client.create_booking(
            request(
                f"Caller {n}",
                f"call_{n}",
                event_type_id=event_type,
                email=f"caller{n}@example.com",
                start=SLOT + n * timedelta(hours=1),
            )
        )
        uids.append(booked.uid)
    clock.now = BOOKED_687 + 10 * MINUTE
    sim.decline(uids[2], "host is away")
    await client.cancel_booking(uids[3])
    await client.reschedule_booking(uids[4], start=SLOT + timedelta(days=1))
    return uids


async def listed(http: aiohttp.ClientSession, query: str) -> dict[str, Any]:
    async with http.get(f"/v2/bookings?{query}") as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def test_filters_by_status_creation_start_attendee_and_event_type(
    http: aiohttp.ClientSession, client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock
) -> None:
    uids = await one_of_each(client, sim, clock)
    moved = sim.ledger.get(uids[4]).rescheduled_to_uid

    async def uids_of(query: str) -> list[str]:
        return [b["uid"] for b in (await listed(http, query))["data"]]

    # Cal.com's `cancelled` holds rejected bookings too; `unconfirmed` is pending and not over.
    assert await uids_of("status=cancelled") == [uids[2], uids[3], uids[4]]
    assert await uids_of("status=unconfirmed") == [uids[1]]
    assert await uids_of("status=upcoming") == [uids[0], uids[1], moved]
    created = BOOKED_687 + MINUTE
    window = f"afterCreatedAt={at(created)}&beforeCreatedAt={at(created + 2 * MINUTE)}"
    assert await uids_of(window) == uids[1:4]
    assert await uids_of(f"afterStart={at(SLOT + timedelta(hours=3))}") == [
        uids[3],
        uids[4],
        moved,
    ]
    assert await uids_of(f"beforeEnd={at(SLOT + timedelta(minutes=30))}") == [uids[0]]
    assert await uids_of("attendeeEmail=caller1@example.com") == [uids[1]]
    assert await uids_of(f"eventTypeId={CONFIRMATION_EVENT_TYPE_ID}") == uids[1:3]
    assert await uids_of(f"eventTypeId={INCIDENT_EVENT_TYPE_ID}") == []


async def test_pages_with_calcoms_pagination_object(
    http: aiohttp.ClientSession, client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock
) -> None:
    await one_of_each(client, sim, clock)

    page = await listed(http, "take=2&skip=2")

    assert page["status"] == "success"
    assert len(page["data"]) == 2
    assert page["pagination"] == {
        "totalItems": 6,
        "remainingItems": 2,
        "returnedItems": 2,
        "itemsPerPage": 2,
        "currentPage": 2,
        "totalPages": 3,
        "hasNextPage": True,
        "hasPreviousPage": True,
    }


async def test_list_bookings_pages_through_every_status_in_the_creation_window(
    client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock
) -> None:
    uids = await one_of_each(client, sim, clock)
    moved = sim.ledger.get(uids[4]).rescheduled_to_uid
    sim.requests.clear()

    everything = await client.list_bookings(created_after=BOOKED_687, take=2)
    window = await client.list_bookings(
        created_after=BOOKED_687 + MINUTE, created_before=BOOKED_687 + 3 * MINUTE, take=2
    )

    assert [b.uid for b in everything] == [*uids, moved]
    statuses = {b.uid: b.status for b in everything}
    assert [statuses[uid] for uid in uids] == [
        "accepted",
        "pending",
        "rejected",
        "cancelled",
        "cancelled",
    ]
    assert all(isinstance(b, CalcomBooking) and b.created_at is not None for b in everything)
    assert [b.uid for b in window] == uids[1:4]
    pages = [(r.query["skip"], r.query["take"]) for r in sim.requests]
    assert pages == [("0", "2"), ("2", "2"), ("4", "2"), ("0", "2"), ("2", "2")]
    assert {r.query["status"] for r in sim.requests} == {"upcoming,past,cancelled"}


async def test_list_bookings_includes_bookings_whose_slot_is_over(
    client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock
) -> None:
    uids = await one_of_each(client, sim, clock)
    clock.now = SLOT + timedelta(days=30)  # every slot is in the past now

    found = await client.list_bookings(created_after=BOOKED_687)

    assert {b.uid for b in found} >= set(uids)


async def test_list_bookings_refuses_a_page_size_calcom_refuses(client: HttpCalcomClient) -> None:
    with pytest.raises(ValueError, match="take must be between 1 and 250"):
        await client.list_bookings(created_after=BOOKED_687, take=251)
