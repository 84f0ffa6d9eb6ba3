"""The simulator's answers and the client's requests against Cal.com's own OpenAPI schemas.

The schemas come from ../shared/contracts (an extract of Cal.com's v2 OpenAPI document); a clone
without that folder skips this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from service.calcom.client import HttpCalcomClient
from service.calcom.port import CreateBooking
from service.calcom.simulator.event_types import (
    CONFIRMATION_EVENT_TYPE_ID,
    INCIDENT_EVENT_TYPE_ID,
    PLAIN_EVENT_TYPE_ID,
)
from service.calcom.simulator.server import CalcomSimulator

SPEC_PATH = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "contracts"
    / "calcom-v2-bookings.openapi.json"
)
if not SPEC_PATH.exists():
    pytest.skip(f"{SPEC_PATH} is absent (no ../shared here)", allow_module_level=True)
jsonschema_rs = pytest.importorskip("jsonschema_rs")

SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
NOW = datetime(2025, 10, 6, 9, 4, 27, tzinfo=UTC)
SLOT = datetime(2025, 10, 10, 6, 0, tzinfo=UTC)
VERSION = {"cal-api-version": "2024-08-13"}


def problems(schema: dict[str, Any], instance: Any) -> list[str]:
    """Every way `instance` breaks `schema` (a fragment of the spec, its $refs resolved there)."""
    # OpenAPI 3.0 schemas are close to JSON Schema draft 4; `components` rides along so that
    # "#/components/schemas/..." resolves against this document.
    validator = jsonschema_rs.Draft4Validator({**schema, "components": SPEC["components"]})
    return [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(instance)]


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    """The documented schema of one answer; a KeyError means the status is undocumented."""
    answer = SPEC["paths"][path][method]["responses"][str(status)]
    schema: dict[str, Any] = answer["content"]["application/json"]["schema"]
    return schema


def request(name: str, call_id: str, *, phone: str | None = None) -> CreateBooking:
    return CreateBooking(
        event_type_id=INCIDENT_EVENT_TYPE_ID,
        start=SLOT,
        attendee_name=name,
        attendee_time_zone="Europe/Berlin",
        attendee_email="termin@example.com",
        attendee_phone_number=phone,
        metadata={"call_id": call_id, "attempt_id": "0b7c"},
    )


@pytest.fixture
async def sim() -> CalcomSimulator:
    return CalcomSimulator(now=lambda: NOW)


@pytest.fixture
async def server(sim: CalcomSimulator) -> AsyncIterator[TestServer]:
    test_server = TestServer(sim.app)
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def http(server: TestServer) -> AsyncIterator[aiohttp.ClientSession]:
    origin = str(server.make_url("/")).rstrip("/")
    async with aiohttp.ClientSession(base_url=origin, headers=VERSION) as session:
        yield session


async def answer(http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, path, json=body) as response:
        return response.status, await response.json()


async def test_create_get_and_cancel_answers_match_calcom_schemas(
    http: aiohttp.ClientSession,
) -> None:
    body = request("Hansi Sputer", "call_687", phone="+491701234567").to_calcom()
    created_status, created = await answer(http, "POST", "/v2/bookings", body)
    uid = created["data"]["uid"]
    again_status, again = await answer(http, "POST", "/v2/bookings", body)
    got_status, got = await answer(http, "GET", f"/v2/bookings/{uid}")
    cancel = {"cancellationReason": "caller changed plans"}
    cancelled_status, cancelled = await answer(http, "POST", f"/v2/bookings/{uid}/cancel", cancel)

    create_schema = response_schema("/v2/bookings", "post", created_status)
    assert problems(create_schema, created) == []
    assert problems(response_schema("/v2/bookings", "post", again_status), again) == []
    assert problems(response_schema("/v2/bookings/{bookingUid}", "get", got_status), got) == []
    cancel_schema = response_schema("/v2/bookings/{bookingUid}/cancel", "post", cancelled_status)
    assert problems(cancel_schema, cancelled) == []
    booking = component("BookingOutput_2024_08_13")
    for data in (created["data"], again["data"], got["data"], cancelled["data"]):
        assert problems(booking, data) == []


async def test_list_and_reschedule_answers_carry_calcom_bookings(
    http: aiohttp.ClientSession,
) -> None:
    body = request("Hansi Sputer", "call_687").to_calcom() | {"eventTypeId": PLAIN_EVENT_TYPE_ID}
    _, created = await answer(http, "POST", "/v2/bookings", body)
    moved_to = {"start": "2025-10-10T08:00:00Z", "reschedulingReason": "caller asked"}
    uid = created["data"]["uid"]
    moved_status, moved = await answer(http, "POST", f"/v2/bookings/{uid}/reschedule", moved_to)
    listed_status, listed = await answer(
        http, "GET", "/v2/bookings?attendeeEmail=termin@example.com"
    )

    assert (moved_status, listed_status) == (201, 200)
    booking = component("BookingOutput_2024_08_13")
    assert problems(booking, moved["data"]) == []
    assert [problems(booking, item) for item in listed["data"]] == [[], []]
    assert listed["pagination"]["totalItems"] == 2


async def test_client_requests_match_calcom_schemas(
    server: TestServer, sim: CalcomSimulator
) -> None:
    origin = str(server.make_url("/")).rstrip("/")
    async with HttpCalcomClient(api_key="cal_test", base_url=origin) as calcom:
        booked = await calcom.create_booking(request("Hansi Sputer", "call_687"))
        await calcom.get_booking(booked.uid)
        await calcom.cancel_booking(booked.uid, reason="caller changed plans")
        await calcom.find_bookings(
            attendee_email="termin@example.com",
            event_type_id=INCIDENT_EVENT_TYPE_ID,
            start=SLOT + timedelta(hours=1),
        )

    create, get, cancel, find = sim.requests
    # The body schema is a oneOf whose regular and recurring inputs require the same fields, so
    # no regular body satisfies exactly one: check against the regular input itself.
    assert problems(component("CreateBookingInput_2024_08_13"), create.body) == []
    # The cancel body is not in this extract; current Cal.com takes these two fields.
    assert set(cancel.body) <= {"cancellationReason", "cancelSubsequentBookings"}
    for recorded, path, method in (
        (create, "/v2/bookings", "post"),
        (get, "/v2/bookings/{bookingUid}", "get"),
        (cancel, "/v2/bookings/{bookingUid}/cancel", "post"),
    ):
        headers = [p for p in SPEC["paths"][path][method]["parameters"] if p["in"] == "header"]
        for header in headers:
            assert recorded.headers.get(header["name"]) == "2024-08-13", header["name"]
    assert find.headers["cal-api-version"] == "2024-08-13"
    assert find.headers["Authorization"] == "Bearer cal_test"


def documented_listing_names() -> set[str]:
    """The query names and status values the contracts README gives for `GET /v2/bookings`."""
    readme = (SPEC_PATH.parent / "README.md").read_text()
    paragraph = readme[readme.index("**Listing bookings**") :].split("\n- ", 1)[0]
    return set(re.findall(r"`(\w+)`", paragraph))


async def test_listing_requests_and_answers_match_what_calcom_documents(
    server: TestServer, sim: CalcomSimulator
) -> None:
    # The OpenAPI extract has no GET /v2/bookings: check against the contracts README, plus
    # sortCreated, which Cal.com's GetBookingsInput_2024_08_13 takes ("asc" | "desc").
    assert "get" not in SPEC["paths"]["/v2/bookings"], "validate against the extract instead"
    documented = documented_listing_names() | {"sortCreated"}
    origin = str(server.make_url("/")).rstrip("/")
    async with HttpCalcomClient(api_key="cal_test", base_url=origin) as calcom:
        booked = await calcom.create_booking(request("Hansi Sputer", "call_687"))
        pending = await calcom.create_booking(
            request("Hansi Sputer", "call_687").model_copy(
                update={"event_type_id": CONFIRMATION_EVENT_TYPE_ID}
            )
        )
        sim.decline(pending.uid, "host is away")
        await calcom.reschedule_booking(booked.uid, start=SLOT + timedelta(hours=1))
        sim.requests.clear()
        await calcom.list_bookings(created_after=NOW - timedelta(days=1), take=2)
        pages = list(sim.requests)
        async with aiohttp.ClientSession(headers=VERSION) as http:
            listed_status, listed = await answer(http, "GET", f"{origin}/v2/bookings")

    assert len(pages) == 2
    for recorded in pages:
        assert set(recorded.query) <= documented, recorded.query
        assert set(recorded.query["status"].split(",")) <= documented
        assert recorded.headers["cal-api-version"] == "2024-08-13"
    assert listed_status == 200
    assert set(listed) == {"status", "data", "pagination"}
    booking = component("BookingOutput_2024_08_13")
    assert [problems(booking, item) for item in listed["data"]] == [[], [], []]
    assert {item["status"] for item in listed["data"]} == {"accepted", "cancelled", "rejected"}


async def test_a_create_with_every_option_matches_calcoms_schema(
    server: TestServer, sim: CalcomSimulator
) -> None:
    origin = str(server.make_url("/")).rstrip("/")
    full = request("Hansi Sputer", "call_687", phone="+491701234567").model_copy(
        update={
            "event_type_id": PLAIN_EVENT_TYPE_ID,
            "attendee_language": "de",
            "booking_fields": {"reason": "Knee pain"},
            "length_in_minutes": 45,
            "guests": ("partner@example.com",),
            "location": "Praxis, Hauptstraße 1",
        }
    )
    async with HttpCalcomClient(api_key="cal_test", base_url=origin) as calcom:
        booked = await calcom.create_booking(full)

    (create,) = sim.requests
    assert problems(component("CreateBookingInput_2024_08_13"), create.body) == []
    assert set(create.body) == {
        "start",
        "eventTypeId",
        "attendee",
        "metadata",
        "bookingFieldsResponses",
        "lengthInMinutes",
        "guests",
        "location",
    }
    assert booked.end is not None and booked.start is not None
    assert booked.end - booked.start == timedelta(minutes=45)
