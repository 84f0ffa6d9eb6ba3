"""The Cal.com simulator on loopback, driven by the real HttpCalcomClient and by plain HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from service.calcom.client import HttpCalcomClient
from service.calcom.port import (
    CalcomRejected,
    CalcomSlotUnavailable,
    CalcomUnavailable,
    CreateBooking,
)
from service.calcom.simulator.event_types import (
    CONFIRMATION_EVENT_TYPE_ID,
    INCIDENT_EVENT_TYPE_ID,
    PLAIN_EVENT_TYPE_ID,
)
from service.calcom.simulator.faults import parse_fault
from service.calcom.simulator.server import CalcomSimulator

# The incident: call 687 booked at 11:04:27 Berlin, call 688 asked 35 minutes later.
BOOKED_687 = datetime(2025, 10, 6, 9, 4, 27, 2000, tzinfo=UTC)
ASKED_688 = BOOKED_687 + timedelta(minutes=35)
SLOT = datetime(2025, 10, 10, 6, 0, tzinfo=UTC)
FALLBACK = "termin@example.com"
CALL_687 = "call_927bf219b2cc20cd24dc97c9f0b"
CALL_688 = "call_39d2ade6f4fc16c51110ca49cdf"
VERSION = {"cal-api-version": "2024-08-13"}


def request(
    name: str = "Hansi Sputer",
    call_id: str = CALL_687,
    *,
    event_type_id: int = INCIDENT_EVENT_TYPE_ID,
    email: str | None = FALLBACK,
    phone: str | None = None,
    start: datetime = SLOT,
) -> CreateBooking:
    return CreateBooking(
        event_type_id=event_type_id,
        start=start,
        attendee_name=name,
        attendee_time_zone="Europe/Berlin",
        attendee_email=email,
        attendee_phone_number=phone,
        metadata={"call_id": call_id},
    )


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


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
def statuses() -> list[int | None]:
    return []


async def no_sleep(seconds: float) -> None:
    """Backoff without waiting: these tests check order, not time."""


@pytest.fixture
async def client(server: TestServer, statuses: list[int | None]) -> AsyncIterator[HttpCalcomClient]:
    def observe(method: str, route: str, status: int | None, seconds: float, attempt: int) -> None:
        statuses.append(status)

    calcom = HttpCalcomClient(
        api_key="cal_test_key",
        base_url=origin(server),
        total_timeout=0.3,
        sleep=no_sleep,
        on_request=observe,
    )
    yield calcom
    await calcom.close()


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=origin(server)) as session:
        yield session


def origin(server: TestServer) -> str:
    return str(server.make_url("/")).rstrip("/")


async def test_returns_the_existing_booking_to_a_second_caller_with_the_same_email(
    client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock
) -> None:
    first = await client.create_booking(request("Hansi Sputer", CALL_687))
    clock.now = ASKED_688

    second = await client.create_booking(request("Hans Schuster", CALL_688))

    assert second.uid == first.uid
    assert second.created_at == BOOKED_687.replace(microsecond=2000)
    assert second.metadata == {"call_id": CALL_687}
    assert [a.name for a in second.attendees] == ["Hansi Sputer"]
    assert len(sim.ledger.bookings) == 1


async def test_a_per_call_address_gets_its_own_booking_or_a_taken_slot(
    client: HttpCalcomClient,
) -> None:
    await client.create_booking(request(email="termin+call_687@example.com"))

    with pytest.raises(CalcomSlotUnavailable, match="One of the hosts"):
        await client.create_booking(request(CALL_688, email="termin+call_688@example.com"))


async def test_requires_confirmation_event_type_returns_the_pending_booking(
    client: HttpCalcomClient,
) -> None:
    kind = CONFIRMATION_EVENT_TYPE_ID
    first = await client.create_booking(request(event_type_id=kind))
    second = await client.create_booking(request("Hans Schuster", CALL_688, event_type_id=kind))

    assert (first.status, second.uid) == ("pending", first.uid)


async def test_phone_only_attendee_is_matched_by_phone(client: HttpCalcomClient) -> None:
    phone = "+491701234567"
    first = await client.create_booking(request(email=None, phone=phone))
    second = await client.create_booking(
        request("Hans Schuster", CALL_688, email=None, phone=phone)
    )

    assert second.uid == first.uid
    assert first.attendees[0].email == "491701234567@sms.cal.com"


async def test_plain_event_type_refuses_a_taken_slot(client: HttpCalcomClient) -> None:
    await client.create_booking(request(event_type_id=PLAIN_EVENT_TYPE_ID))

    with pytest.raises(CalcomSlotUnavailable) as raised:
        await client.create_booking(request(CALL_688, event_type_id=PLAIN_EVENT_TYPE_ID))

    assert raised.value.message == (
        "User either already has booking at this time or is not available"
    )
    assert raised.value.status == 400


async def test_unknown_event_type_is_a_404_rejection(client: HttpCalcomClient) -> None:
    with pytest.raises(CalcomRejected) as raised:
        await client.create_booking(request(event_type_id=999))

    assert (raised.value.status, raised.value.code) == (404, "NotFoundException")


async def test_refuses_a_booking_in_the_past(client: HttpCalcomClient) -> None:
    with pytest.raises(CalcomRejected, match="in the past"):
        await client.create_booking(request(start=BOOKED_687 - timedelta(days=1)))


async def test_cancel_frees_the_slot(client: HttpCalcomClient) -> None:
    plain = PLAIN_EVENT_TYPE_ID
    first = await client.create_booking(request(event_type_id=plain))

    cancelled = await client.cancel_booking(first.uid, reason="caller changed plans")
    second = await client.create_booking(request("Hans Schuster", CALL_688, event_type_id=plain))

    assert cancelled.status == "cancelled"
    assert cancelled.raw["cancellationReason"] == "caller changed plans"
    assert second.uid != first.uid
    assert (await client.get_booking(first.uid)).status == "cancelled"


async def test_reschedule_makes_a_new_booking_and_cancels_the_old(
    client: HttpCalcomClient,
) -> None:
    first = await client.create_booking(request(event_type_id=PLAIN_EVENT_TYPE_ID))

    moved = await client.reschedule_booking(first.uid, start=SLOT + timedelta(hours=2))

    assert moved.uid != first.uid
    assert moved.raw["rescheduledFromUid"] == first.uid
    assert moved.metadata == {"call_id": CALL_687}
    assert (await client.get_booking(first.uid)).status == "cancelled"


async def test_find_bookings_by_plus_addressed_email_event_type_and_start(
    client: HttpCalcomClient,
) -> None:
    email = "termin+call_687@example.com"
    booked = await client.create_booking(request(email=email))
    await client.create_booking(request(email=email, start=SLOT + timedelta(hours=1)))

    found = await client.find_bookings(
        attendee_email=email, event_type_id=INCIDENT_EVENT_TYPE_ID, start=SLOT
    )

    assert [b.uid for b in found] == [booked.uid]


async def test_scripted_faults_are_consumed_in_order(
    client: HttpCalcomClient, sim: CalcomSimulator, statuses: list[int | None]
) -> None:
    sim.add_faults("500", "429:1")

    booked = await client.create_booking(request())

    assert statuses == [500, 429, 201]
    assert sim.faults.pending() == []
    assert booked.uid in sim.ledger.bookings


async def test_faults_for_one_operation_wait_for_it(
    client: HttpCalcomClient, sim: CalcomSimulator
) -> None:
    sim.add_faults("409@create")
    with pytest.raises(CalcomRejected):
        await client.get_booking("unknown")

    with pytest.raises(CalcomSlotUnavailable) as raised:
        await client.create_booking(request())

    assert raised.value.status == 409


async def test_a_hanging_calcom_is_a_timeout(
    server: TestServer, sim: CalcomSimulator, statuses: list[int | None]
) -> None:
    sim.add_faults("timeout", "timeout")
    calcom = HttpCalcomClient(
        api_key="k", base_url=origin(server), total_timeout=0.2, max_attempts=2, sleep=no_sleep
    )

    with pytest.raises(CalcomUnavailable) as raised:
        await calcom.create_booking(request())
    await calcom.close()

    assert (raised.value.code, raised.value.status, raised.value.attempts) == ("timeout", None, 2)
    assert sim.ledger.bookings == {}


async def test_a_taken_slot_after_a_timed_out_write_is_flagged_uncertain(
    client: HttpCalcomClient, sim: CalcomSimulator
) -> None:
    sim.add_faults("timeout_after_write")

    with pytest.raises(CalcomSlotUnavailable) as raised:
        await client.create_booking(request(event_type_id=PLAIN_EVENT_TYPE_ID))

    assert raised.value.earlier_attempt_uncertain is True
    assert len(sim.ledger.bookings) == 1  # our own booking, behind the timeout


async def test_a_dropped_connection_is_retried(
    client: HttpCalcomClient, sim: CalcomSimulator, statuses: list[int | None]
) -> None:
    sim.add_faults("drop")

    await client.create_booking(request())

    assert statuses == [None, 201]


async def test_fifty_concurrent_creates_make_one_booking(
    server: TestServer, sim: CalcomSimulator
) -> None:
    # What is under test is the simulator's serialisation, not the client's timeout: the
    # fixture's 0.3 s let the winner time out on a loaded machine (CI) and retry into its own
    # booking's taken slot, so this client waits as long as a hundred creates can take.
    async with HttpCalcomClient(
        api_key="cal_test_key", base_url=origin(server), total_timeout=30
    ) as client:
        same_caller = [client.create_booking(request()) for _ in range(50)]
        plain = [
            client.create_booking(
                request(f"caller {n}", f"call_{n}", event_type_id=PLAIN_EVENT_TYPE_ID)
            )
            for n in range(50)
        ]

        returned = await asyncio.gather(*same_caller)
        answers = await asyncio.gather(*plain, return_exceptions=True)

        assert len({booking.uid for booking in returned}) == 1
    refused = [a for a in answers if isinstance(a, CalcomSlotUnavailable)]
    assert (len(refused), len(sim.ledger.bookings)) == (49, 2)


async def test_validates_metadata_like_calcom(http: aiohttp.ClientSession) -> None:
    body = request().to_calcom()
    body["metadata"] = {"call_id": 687}

    async with http.post("/v2/bookings", json=body, headers=VERSION) as response:
        answer = await response.json()

    assert response.status == 400
    assert answer["status"] == "error"
    assert answer["path"] == "/v2/bookings"
    assert answer["error"]["code"] == "BadRequestException"
    assert answer["error"]["message"].startswith("Metadata must have at most 50 keys")


async def test_refuses_a_request_without_the_version_header(http: aiohttp.ClientSession) -> None:
    async with http.post("/v2/bookings", json=request().to_calcom()) as response:
        answer = await response.json()

    assert response.status == 400
    assert "cal-api-version" in answer["error"]["message"]


async def test_sends_rate_limit_headers_and_enforces_the_limit_when_asked(
    http: aiohttp.ClientSession, sim: CalcomSimulator
) -> None:
    sim.rate_limit, sim.enforce_rate_limit = 2, True
    seen: list[tuple[int, str, str]] = []
    for _ in range(3):
        async with http.get("/v2/bookings", headers=VERSION) as response:
            limits = response.headers
            seen.append(
                (
                    response.status,
                    limits["X-RateLimit-Remaining-Default"],
                    limits["X-RateLimit-Reset-Default"],
                )
            )

    assert [(status, remaining) for status, remaining, _ in seen] == [
        (200, "1"),
        (200, "0"),
        (429, "0"),
    ]
    assert all(0 < int(reset) <= 60 for _, _, reset in seen)


async def test_admin_endpoints_script_faults_set_the_clock_and_reset(
    http: aiohttp.ClientSession, sim: CalcomSimulator
) -> None:
    async def call(method: str, path: str, body: Any = None) -> Any:
        async with http.request(method, f"/_simulator{path}", json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    faults = await call("POST", "/faults", ["500", {"kind": "429", "retry_after": 3}])
    assert faults["pending"] == [{"kind": "500"}, {"kind": "429", "retry_after": 3}]
    clock = await call("POST", "/clock", {"now": "2025-10-06T09:04:27Z"})
    assert clock == {"now": "2025-10-06T09:04:27.000Z"}
    await call("DELETE", "/faults")
    async with http.post("/v2/bookings", json=request().to_calcom(), headers=VERSION) as response:
        assert response.status == 201

    bookings = await call("GET", "/bookings")
    assert bookings["data"][0]["createdAt"] == "2025-10-06T09:04:27.000Z"
    assert (await call("GET", "/requests"))["data"][0]["headers"]["cal-api-version"] == (
        "2024-08-13"
    )
    await call("POST", "/reset")
    assert (await call("GET", "/bookings"))["data"] == []


async def test_get_answers_a_booking_in_every_status(
    client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock
) -> None:
    confirm = CONFIRMATION_EVENT_TYPE_ID
    accepted = await client.create_booking(request(event_type_id=PLAIN_EVENT_TYPE_ID))
    pending = await client.create_booking(request(event_type_id=confirm))
    rejected = await client.create_booking(
        request(event_type_id=confirm, start=SLOT + timedelta(hours=1))
    )
    sim.ledger.decline(rejected.uid, reason="host is away", now=clock.now)
    cancelled = await client.create_booking(
        request(event_type_id=PLAIN_EVENT_TYPE_ID, start=SLOT + timedelta(hours=2))
    )
    await client.cancel_booking(cancelled.uid, reason="caller changed plans")

    read = [await client.get_booking(b.uid) for b in (accepted, pending, rejected, cancelled)]

    assert [b.status for b in read] == ["accepted", "pending", "rejected", "cancelled"]
    # BookingOutput_2024_08_13 has no rejection reason: only the webhook carries it.
    assert "rejectionReason" not in read[2].raw
    assert sim.ledger.get(rejected.uid).rejection_reason == "host is away"
    assert read[3].raw["cancellationReason"] == "caller changed plans"


async def test_cancelling_a_cancelled_booking_is_calcoms_400(client: HttpCalcomClient) -> None:
    booked = await client.create_booking(request(event_type_id=PLAIN_EVENT_TYPE_ID))
    await client.cancel_booking(booked.uid)

    with pytest.raises(CalcomRejected) as raised:
        await client.cancel_booking(booked.uid)

    assert (raised.value.status, raised.value.message) == (
        400,
        "This booking has already been cancelled.",
    )


async def test_a_rescheduled_booking_is_cancelled_and_names_its_successor(
    client: HttpCalcomClient,
) -> None:
    first = await client.create_booking(request(event_type_id=PLAIN_EVENT_TYPE_ID))

    moved = await client.reschedule_booking(first.uid, start=SLOT + timedelta(hours=2))
    old = await client.get_booking(first.uid)

    assert (old.status, old.raw["rescheduled"], old.raw["rescheduledToUid"]) == (
        "cancelled",
        True,
        moved.uid,
    )
    assert "rescheduled" not in moved.raw
    assert (moved.status, moved.raw["rescheduledFromUid"]) == ("accepted", first.uid)
    with pytest.raises(CalcomRejected, match="already been cancelled"):
        await client.cancel_booking(first.uid)


async def test_a_declined_booking_frees_its_slot(
    client: HttpCalcomClient, sim: CalcomSimulator, clock: Clock
) -> None:
    confirm = CONFIRMATION_EVENT_TYPE_ID
    first = await client.create_booking(request(event_type_id=confirm))
    sim.ledger.decline(first.uid, reason=None, now=clock.now)

    second = await client.create_booking(request("Hans Schuster", CALL_688, event_type_id=confirm))

    assert (second.uid != first.uid, second.status) == (True, "pending")


async def test_an_answer_fault_answers_its_body_after_the_request_took_effect(
    http: aiohttp.ClientSession, sim: CalcomSimulator
) -> None:
    sim.add_answer_fault({"status": "success", "data": [{"id": 2**64}]}, status=200)
    sim.add_answer_fault(b"<html>\xff</html>", operation="find", writes=False)
    body = {
        "eventTypeId": INCIDENT_EVENT_TYPE_ID,
        "start": "2025-10-10T06:00:00.000Z",
        "attendee": {"name": "Hansi Sputer", "email": FALLBACK, "timeZone": "Europe/Berlin"},
    }
    headers = {"cal-api-version": "2024-08-13"}

    created = await http.post("/v2/bookings", json=body, headers=headers)
    found = await http.get("/v2/bookings", headers=headers)

    assert created.status == 200
    assert await created.text() == '{"status": "success", "data": [{"id": 18446744073709551616}]}'
    assert len(sim.ledger.bookings) == 1  # the request took effect behind the odd answer
    assert found.status == 201
    assert await found.read() == b"<html>\xff</html>"
    assert sim.faults.pending() == []


def test_an_answer_fault_reads_its_json_from_the_command_line() -> None:
    fault = parse_fault('answer:{"data": {"email": "a@b.de"}}@get')
    untargeted = parse_fault('answer:{"email": "a@b.de"}')

    assert (fault.operation, fault.answer_body) == ("get", '{"data": {"email": "a@b.de"}}')
    assert (untargeted.operation, untargeted.answer_body) == (None, '{"email": "a@b.de"}')
    with pytest.raises(ValueError, match="not JSON"):
        parse_fault("answer:<html>")
