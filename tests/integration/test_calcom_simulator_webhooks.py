"""The simulator's webhooks reach a receiver on loopback signed, shaped and faulty like Cal.com's;
the host and the attendee act through the simulator's controls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service.api.calcom_webhook_models import CalcomBookingWebhook
from service.api.signatures import verify_calcom
from service.calcom.client import HttpCalcomClient
from service.calcom.simulator.event_types import (
    CONFIRMATION_EVENT_TYPE_ID,
    PLAIN_EVENT_TYPE_ID,
)
from service.calcom.simulator.input import SimulatedError
from service.calcom.simulator.server import CalcomSimulator
from tests.integration.test_calcom_simulator import (
    BOOKED_687,
    CALL_687,
    CALL_688,
    SLOT,
    Clock,
    origin,
    request,
)

SECRET = "whsec_simulated"
CONFIRM = CONFIRMATION_EVENT_TYPE_ID
PLAIN = PLAIN_EVENT_TYPE_ID


@dataclass
class Arrival:
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.raw)
        return parsed

    @property
    def trigger(self) -> str:
        return str(self.body["triggerEvent"])

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.body["payload"]
        return payload


@dataclass
class Receiver:
    """A webhook endpoint that keeps what arrives and answers `status`."""

    url: str = ""
    status: int = 200
    arrivals: list[Arrival] = field(default_factory=list)

    def triggers(self) -> list[str]:
        return [a.trigger for a in self.arrivals]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    kept = Receiver()

    async def receive(request: web.Request) -> web.Response:
        kept.arrivals.append(Arrival(dict(request.headers), await request.read()))
        return web.Response(status=kept.status)

    app = web.Application()
    app.router.add_post("/hooks/calcom", receive)
    server = TestServer(app)
    await server.start_server()
    kept.url = str(server.make_url("/hooks/calcom"))
    yield kept
    await server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(BOOKED_687)


@pytest.fixture
async def sim(clock: Clock, receiver: Receiver) -> CalcomSimulator:
    return CalcomSimulator(now=clock, webhook_url=receiver.url, webhook_secret=SECRET)


@pytest.fixture
async def server(sim: CalcomSimulator) -> AsyncIterator[TestServer]:
    test_server = TestServer(sim.app)
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[HttpCalcomClient]:
    calcom = HttpCalcomClient(api_key="cal_test_key", base_url=origin(server))
    yield calcom
    await calcom.close()


@pytest.fixture
async def admin(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=origin(server)) as session:
        yield session


def signed_and_parsed(arrival: Arrival) -> CalcomBookingWebhook:
    """The arrival as the service would take it: the signature holds, the body parses."""
    verify_calcom(arrival.raw, arrival.headers.get("X-Cal-Signature-256"), SECRET)
    assert arrival.headers["X-Cal-Webhook-Version"] == "2021-10-20"
    assert arrival.headers["Content-Type"] == "application/json"
    return CalcomBookingWebhook.model_validate_json(arrival.raw)


async def test_an_accepted_create_sends_a_signed_booking_created(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    booked = await client.create_booking(request(event_type_id=PLAIN))
    await sim.webhooks_idle(timeout=5)

    [arrival] = receiver.arrivals
    webhook = signed_and_parsed(arrival)
    assert (webhook.triggerEvent, webhook.createdAt) == ("BOOKING_CREATED", BOOKED_687)
    payload = webhook.payload
    assert (payload.uid, payload.bookingId, payload.eventTypeId) == (booked.uid, booked.id, PLAIN)
    assert (payload.startTime, payload.endTime) == (SLOT, SLOT + timedelta(minutes=30))
    assert (payload.status, payload.metadata_text("call_id")) == ("ACCEPTED", CALL_687)
    assert arrival.payload["attendees"][0]["email"] == "termin@example.com"
    assert arrival.payload["organizer"]["email"] == "plain-host@example.com"


async def test_the_shortcut_returning_an_existing_booking_sends_nothing(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    first = await client.create_booking(request("Hansi Sputer", CALL_687))
    second = await client.create_booking(request("Hans Schuster", CALL_688))
    await sim.webhooks_idle(timeout=5)

    assert second.uid == first.uid
    assert receiver.triggers() == ["BOOKING_CREATED"]


async def test_a_pending_create_is_requested_and_the_hosts_accept_is_created_without_our_metadata(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    booked = await client.create_booking(request(event_type_id=CONFIRM))
    assert booked.status == "pending"

    accepted = sim.accept(booked.uid)
    await sim.webhooks_idle(timeout=5)

    requested, created = (signed_and_parsed(a) for a in receiver.arrivals)
    assert (requested.triggerEvent, requested.payload.status) == ("BOOKING_REQUESTED", "PENDING")
    assert requested.payload.metadata_text("call_id") == CALL_687
    assert (created.triggerEvent, created.payload.uid) == ("BOOKING_CREATED", booked.uid)
    assert created.payload.status == "ACCEPTED"
    assert created.payload.metadata == {"videoCallUrl": f"https://app.cal.com/video/{booked.uid}"}
    assert accepted.status == "accepted"
    assert (await client.get_booking(booked.uid)).status == "accepted"


async def test_the_hosts_decline_sends_rejected_with_the_reason_and_no_metadata(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    booked = await client.create_booking(request(event_type_id=CONFIRM))

    sim.decline(booked.uid, "host is away")
    await sim.webhooks_idle(timeout=5)

    rejected = receiver.arrivals[-1]
    webhook = signed_and_parsed(rejected)
    assert (webhook.triggerEvent, webhook.payload.status) == ("BOOKING_REJECTED", "REJECTED")
    assert rejected.payload["rejectionReason"] == "host is away"
    assert "metadata" not in rejected.payload
    assert (await client.get_booking(booked.uid)).status == "rejected"


async def test_only_a_pending_booking_can_be_accepted_or_declined(
    client: HttpCalcomClient, sim: CalcomSimulator
) -> None:
    booked = await client.create_booking(request(event_type_id=PLAIN))

    with pytest.raises(SimulatedError) as accepting:
        sim.accept(booked.uid)
    with pytest.raises(SimulatedError) as declining:
        sim.decline(booked.uid, "no")

    assert (accepting.value.status, declining.value.status) == (409, 409)
    assert "accepted" in accepting.value.message


async def test_api_and_attendee_cancellations_send_cancelled_with_the_reason(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver, clock: Clock
) -> None:
    by_api = await client.create_booking(request(event_type_id=PLAIN))
    by_attendee = await client.create_booking(
        request(event_type_id=PLAIN, start=SLOT + timedelta(hours=1))
    )
    clock.now = BOOKED_687 + timedelta(minutes=5)

    await client.cancel_booking(by_api.uid, reason="caller changed plans")
    sim.cancel_as_attendee(by_attendee.uid, "feeling better")
    await sim.webhooks_idle(timeout=5)

    cancelled = [a for a in receiver.arrivals if a.trigger == "BOOKING_CANCELLED"]
    webhooks = [signed_and_parsed(a) for a in cancelled]
    assert [(w.payload.uid, w.payload.cancellationReason) for w in webhooks] == [
        (by_api.uid, "caller changed plans"),
        (by_attendee.uid, "feeling better"),
    ]
    assert {w.payload.status for w in webhooks} == {"CANCELLED"}
    assert {w.createdAt for w in webhooks} == {clock.now}
    assert [a.payload["cancelledBy"] for a in cancelled] == [
        "plain-host@example.com",
        "termin@example.com",
    ]
    with pytest.raises(SimulatedError) as again:
        sim.cancel_as_attendee(by_attendee.uid)
    assert again.value.status == 409


async def test_a_reschedule_sends_the_new_uid_with_the_old_as_reschedule_uid(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    first = await client.create_booking(request(event_type_id=PLAIN))

    moved = await client.reschedule_booking(first.uid, start=SLOT + timedelta(hours=2))
    await sim.webhooks_idle(timeout=5)

    arrival = receiver.arrivals[-1]
    webhook = signed_and_parsed(arrival)
    assert webhook.triggerEvent == "BOOKING_RESCHEDULED"
    assert (webhook.payload.uid, webhook.payload.rescheduleUid) == (moved.uid, first.uid)
    assert webhook.payload.startTime == SLOT + timedelta(hours=2)
    assert arrival.payload["rescheduleStartTime"] == "2025-10-10T06:00:00Z"
    assert webhook.payload.metadata_text("call_id") == CALL_687
    assert receiver.triggers() == ["BOOKING_CREATED", "BOOKING_RESCHEDULED"]


async def test_without_a_secret_the_signature_is_calcoms_placeholder(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    sim.set_webhook(receiver.url, None)

    await client.create_booking(request(event_type_id=PLAIN))
    await sim.webhooks_idle(timeout=5)

    assert receiver.arrivals[0].headers["X-Cal-Signature-256"] == "no-secret-provided"


async def test_a_failed_delivery_is_recorded_and_not_retried(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    receiver.status = 500

    await client.create_booking(request(event_type_id=PLAIN))
    await sim.webhooks_idle(timeout=5)

    assert len(receiver.arrivals) == 1
    [delivery] = sim.webhooks.deliveries
    assert (delivery.state, delivery.status) == ("failed", 500)


async def test_drop_and_duplicate_faults(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    sim.add_webhook_faults("drop", "duplicate")

    dropped = await client.create_booking(request(event_type_id=PLAIN))
    doubled = await client.create_booking(
        request(event_type_id=PLAIN, start=SLOT + timedelta(hours=1))
    )
    await sim.webhooks_idle(timeout=5)

    assert [a.payload["uid"] for a in receiver.arrivals] == [doubled.uid, doubled.uid]
    assert receiver.arrivals[0].raw == receiver.arrivals[1].raw
    states = [(d.uid, d.fault, d.state) for d in sim.webhooks.deliveries]
    assert states == [
        (dropped.uid, "drop", "dropped"),
        (doubled.uid, "duplicate", "delivered"),
        (doubled.uid, "duplicate", "delivered"),
    ]


async def test_reorder_sends_a_webhook_after_the_next_one(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    sim.add_webhook_faults("reorder")
    booked = await client.create_booking(request(event_type_id=PLAIN))

    with pytest.raises(TimeoutError, match="held by a reorder fault"):
        await sim.webhooks_idle(timeout=0.05)
    await client.cancel_booking(booked.uid, reason="caller changed plans")
    await sim.webhooks_idle(timeout=5)

    assert receiver.triggers() == ["BOOKING_CANCELLED", "BOOKING_CREATED"]


async def test_a_held_webhook_follows_the_next_even_when_that_one_is_dropped(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    sim.add_webhook_faults("reorder", "drop")
    booked = await client.create_booking(request(event_type_id=PLAIN))

    await client.cancel_booking(booked.uid)
    await sim.webhooks_idle(timeout=5)

    assert receiver.triggers() == ["BOOKING_CREATED"]
    assert [d.state for d in sim.webhooks.deliveries] == ["delivered", "dropped"]


async def test_a_delayed_webhook_is_overtaken_by_the_next(
    client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    sim.add_webhook_faults("delay:200")

    booked = await client.create_booking(request(event_type_id=PLAIN))
    await client.cancel_booking(booked.uid)
    await sim.webhooks_idle(timeout=5)

    assert receiver.triggers() == ["BOOKING_CANCELLED", "BOOKING_CREATED"]


async def test_admin_routes_drive_the_host_the_attendee_and_webhooks(
    admin: aiohttp.ClientSession, client: HttpCalcomClient, sim: CalcomSimulator, receiver: Receiver
) -> None:
    async def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with admin.request(method, f"/_simulator{path}", json=body) as response:
            return response.status, await response.json()

    assert await call("POST", "/webhooks", {"url": receiver.url, "secret": SECRET}) == (
        200,
        {"url": receiver.url, "signed": True},
    )
    assert await call("POST", "/webhook-faults", ["duplicate", {"kind": "delay", "delay_ms": 1}])
    assert (await call("GET", "/webhook-faults"))[1] == {
        "pending": [{"kind": "duplicate"}, {"kind": "delay", "delay_ms": 1}]
    }
    assert (await call("DELETE", "/webhook-faults"))[1] == {"pending": []}
    pending = await client.create_booking(request(event_type_id=CONFIRM))
    declined = await client.create_booking(
        request(event_type_id=CONFIRM, start=SLOT + timedelta(hours=1))
    )
    accepted = await call("POST", f"/bookings/{pending.uid}/accept")
    again = await call("POST", f"/bookings/{pending.uid}/accept")
    rejected = await call("POST", f"/bookings/{declined.uid}/decline", {"reason": "away"})
    cancelled = await call("POST", f"/bookings/{pending.uid}/cancel", {"reason": "ill"})
    unknown = await call("POST", "/bookings/nope/accept")
    await sim.webhooks_idle(timeout=5)
    status, listed = await call("GET", "/webhooks")

    assert (accepted[0], accepted[1]["data"]["status"]) == (200, "accepted")
    assert (again[0], again[1]["error"]) == (409, "ConflictException")
    assert (rejected[0], rejected[1]["data"]["status"]) == (200, "rejected")
    assert sim.ledger.get(declined.uid).rejection_reason == "away"
    assert (cancelled[0], cancelled[1]["data"]["cancellationReason"]) == (200, "ill")
    assert unknown[0] == 404
    assert status == 200
    assert [(d["trigger"], d["state"], d["status"]) for d in listed["data"]] == [
        ("BOOKING_REQUESTED", "delivered", 200),
        ("BOOKING_REQUESTED", "delivered", 200),
        ("BOOKING_CREATED", "delivered", 200),
        ("BOOKING_REJECTED", "delivered", 200),
        ("BOOKING_CANCELLED", "delivered", 200),
    ]
    assert receiver.triggers() == [d["trigger"] for d in listed["data"]]


async def test_the_sender_stops_with_the_app(sim: CalcomSimulator, receiver: Receiver) -> None:
    server = TestServer(sim.app)
    await server.start_server()
    sim.add_webhook_faults("delay:60000")
    async with HttpCalcomClient(api_key="k", base_url=origin(server)) as calcom:
        await calcom.create_booking(request(event_type_id=PLAIN))

    await asyncio.wait_for(server.close(), timeout=5)

    assert receiver.arrivals == []
