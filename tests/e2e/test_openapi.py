"""`GET /openapi.json`: a valid OpenAPI 3.1 document that describes every route the app serves."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import available_timezones

from aiohttp import hdrs
from openapi_spec_validator import validate

from service.api.openapi.docs_page import PATH as DOCS_PAGE
from tests.e2e.conftest import Harness

_PARAM = re.compile(r"\{[^}]+\}")


async def document(harness: Harness) -> dict[str, Any]:
    response = await harness.client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body


async def test_the_document_is_valid_openapi_3_1(harness: Harness) -> None:
    spec = await document(harness)
    assert spec["openapi"].startswith("3.1")
    validate(spec)


async def test_every_route_of_the_app_is_documented(harness: Harness) -> None:
    spec = await document(harness)
    documented = {
        (method.upper(), _PARAM.sub("{}", path))
        for path, operations in spec["paths"].items()
        for method in operations
    }
    served = {
        (route.method, _PARAM.sub("{}", route.resource.canonical))
        for route in harness.client.app.router.routes()
        if route.resource is not None
        and route.method not in (hdrs.METH_HEAD, hdrs.METH_ANY)
        # The page that shows the document is for people, not part of the contract.
        and not route.resource.canonical.startswith(DOCS_PAGE)
    }
    assert served <= documented, served - documented


async def test_request_bodies_come_from_the_models(harness: Harness) -> None:
    schemas = (await document(harness))["components"]["schemas"]
    booking = schemas["BookingRequest"]
    assert booking["additionalProperties"] is False
    assert set(booking["required"]) == {"call_id", "event_type_id", "start", "attendee"}
    assert schemas["AttendeeIn"]["properties"]["name"]["maxLength"] == 200
    assert schemas["Error"]["required"] == ["error"]


async def test_time_zones_are_a_pattern_every_known_zone_matches(harness: Harness) -> None:
    """No enum of zones: its names collide as identifiers in generated clients (`Etc/GMT+1`,
    `Etc/GMT-1`) and a client generated today would refuse the zones of tomorrow's tzdata."""
    time_zone = (await document(harness))["components"]["schemas"]["AttendeeIn"]["properties"][
        "time_zone"
    ]
    assert "enum" not in time_zone
    pattern = re.compile(time_zone["pattern"])
    assert [zone for zone in available_timezones() if not pattern.search(zone)] == []
    assert not pattern.search("Europe/../Berlin") and not pattern.search("Europe/Berlin ")


async def test_every_operation_has_one_declared_tag(harness: Harness) -> None:
    spec = await document(harness)
    declared = [tag["name"] for tag in spec["tags"]]
    assert declared == ["bookings", "appointments", "slots", "audit", "webhooks", "operations"]
    tags = {
        f"{method.upper()} {path}": operation["tags"]
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    assert {name: found for name, found in tags.items() if len(found) != 1} == {}
    assert {found[0] for found in tags.values()} == set(declared)
    assert tags["POST /v1/booking-attempts"] == ["bookings"]
    assert tags["GET /v1/calls/{call_id}/events"] == ["audit"]
    assert tags["POST /v1/webhooks/calcom"] == ["webhooks"]


async def test_protected_operations_declare_bearer_and_webhooks_do_not(harness: Harness) -> None:
    paths = (await document(harness))["paths"]
    assert paths["/v1/booking-attempts"]["post"]["security"] == [{"bearerAuth": []}]
    assert "401" in paths["/v1/booking-attempts"]["post"]["responses"]
    assert paths["/v1/webhooks/retell"]["post"]["security"] == []
    assert paths["/health"]["get"]["security"] == []
