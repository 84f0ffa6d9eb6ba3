"""`booking-guard retell functions`: definitions Retell accepts, generated from the models."""

from __future__ import annotations

import io
import json
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from service.api.retell_availability import AVAILABILITY_FUNCTION, AvailabilityArgs
from service.api.retell_booking import BOOKING_FUNCTIONS, BookingArgs
from service.cli.main import main
from service.cli.retell import print_functions
from service.settings import Settings

AGENTS = {"agent_a": {"Beratung": 1001, "Erstgespräch": 1002}}
BOOK = {
    "event_type_id": 1002,
    "start": "2025-10-10T08:00",
    "name": "Hans Schuster",
    "time_zone": "Europe/Berlin",
    "email": "hans@example.com",
    "phone": "+4930123456",
    "booking_fields": {"reason": "back pain", "first_visit": True},
}
AVAILABILITY = [
    {"event_type_id": 1002, "time_zone": "Europe/Berlin", "day": "2025-10-10"},
    {
        "event_type_id": 1002,
        "time_zone": "Europe/Berlin",
        "from": "2025-10-10T08:00",
        "to": "2025-10-11T18:00:00+02:00",
    },
]


def printed(settings: Settings, agent: str | None = None) -> dict[str, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    assert print_functions(settings, agent=agent, out=out, err=err) == 0, err.getvalue()
    return {function["name"]: function for function in json.loads(out.getvalue())}


def keywords(schema: Any) -> list[str]:
    """Every keyword used anywhere in a schema (property names are not keywords)."""
    if isinstance(schema, list):
        return [k for item in schema for k in keywords(item)]
    if not isinstance(schema, dict):
        return []
    found = list(schema)
    for key, value in schema.items():
        children = value.values() if key in ("properties", "patternProperties") else [value]
        for child in children:
            found += keywords(child)
    return found


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def field_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_both_functions_are_printed_as_retells_form_wants_them() -> None:
    functions = printed(Settings())
    assert set(functions) == {"book_appointment", AVAILABILITY_FUNCTION}
    assert "book_appointment" in BOOKING_FUNCTIONS  # the names the endpoint answers
    for function in functions.values():
        assert set(function) == {"name", "description", "parameters"}
        assert function["description"]
        parameters = function["parameters"]
        assert parameters["type"] == "object"
        assert set(parameters["required"]) <= set(parameters["properties"])
        used = set(keywords(parameters))
        assert not used & {"$defs", "$ref", "title", "definitions"}, used


def test_the_parameters_are_the_models_fields() -> None:
    functions = printed(Settings())
    booking = functions["book_appointment"]["parameters"]
    availability = functions[AVAILABILITY_FUNCTION]["parameters"]
    assert set(booking["properties"]) == field_names(BookingArgs)
    assert set(availability["properties"]) == field_names(AvailabilityArgs)
    assert booking["required"] == ["event_type_id", "start", "name", "time_zone"]


def test_real_arguments_validate_and_broken_ones_do_not() -> None:
    functions = printed(Settings())
    booking = validator(functions["book_appointment"]["parameters"])
    booking.validate(BOOK)
    BookingArgs.model_validate(BOOK)  # the schema and the model agree
    assert not booking.is_valid({k: v for k, v in BOOK.items() if k != "name"})
    assert not booking.is_valid(BOOK | {"event_type_id": "1002"})
    availability = validator(functions[AVAILABILITY_FUNCTION]["parameters"])
    for args in AVAILABILITY:
        availability.validate(args)
        AvailabilityArgs.model_validate(args)
    assert not availability.is_valid({"event_type_id": 1002, "day": "2025-10-10"})


def test_an_agents_services_become_the_service_enum() -> None:
    functions = printed(Settings(retell_agents=AGENTS), agent="agent_a")
    for function in functions.values():
        parameters = function["parameters"]
        assert "event_type_id" not in parameters["properties"]
        assert parameters["properties"]["service"]["enum"] == ["Beratung", "Erstgespräch"]
        assert "service" in parameters["required"]
    booking = validator(functions["book_appointment"]["parameters"])
    booking.validate(
        {k: v for k, v in BOOK.items() if k != "event_type_id"} | {"service": "Beratung"}
    )
    assert not booking.is_valid(BOOK | {"service": "Massage"})


def test_an_agent_not_configured_is_refused_naming_the_setting() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert print_functions(Settings(retell_agents=AGENTS), agent="agent_x", out=out, err=err) == 2
    assert "BOOKING_GUARD_RETELL_AGENTS" in err.getvalue() and "agent_a" in err.getvalue()
    assert out.getvalue() == ""


def test_the_command_prints_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOOKING_GUARD_RETELL_AGENTS", json.dumps(AGENTS))
    assert main(["retell", "functions", "--agent", "agent_a"]) == 0
    functions = json.loads(capsys.readouterr().out)
    assert [f["name"] for f in functions] == ["book_appointment", AVAILABILITY_FUNCTION]
