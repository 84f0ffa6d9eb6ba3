"""The Retell custom functions' definitions, generated from the models that validate their calls.

Retell's custom-function form takes a name, a description and the parameters as a JSON Schema
object (`type: object`, `properties`, `required`). pydantic's schemas carry what an LLM and
Retell's form do without or cannot follow: `$defs`/`$ref`, a `title` on every field,
`anyOf [X, null]` for optional fields, `format: date-time` where a local time without an offset
is also accepted. `retell_parameters` inlines and drops them, so the definitions pasted into
Retell stay the ones the endpoint validates against (`booking-guard retell functions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from service.api.retell_agents import ServiceArg
from service.api.retell_availability import AVAILABILITY_FUNCTION, AvailabilityArgs
from service.api.retell_booking import BookingArgs

BOOKING_FUNCTION = "book_appointment"
DESCRIPTIONS = {
    BOOKING_FUNCTION: "Book the appointment the caller agreed to. Say the message of the "
    "answer to the caller; when the time is taken, offer the free times it names.",
    AVAILABILITY_FUNCTION: "Find free appointment times on a day or in a range, to offer "
    "the caller.",
}
MODELS: dict[str, type[BaseModel]] = {
    BOOKING_FUNCTION: BookingArgs,
    AVAILABILITY_FUNCTION: AvailabilityArgs,
}


def function_definitions(*, by_service: bool, services: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Each function as Retell's form wants it. `by_service`: agents are configured, so the
    functions take `service` (an enum of `services` when given) instead of `event_type_id`."""
    return [
        {
            "name": name,
            "description": DESCRIPTIONS[name],
            "parameters": retell_parameters(model, by_service=by_service, services=services),
        }
        for name, model in MODELS.items()
    ]


def retell_parameters(
    model: type[BaseModel], *, by_service: bool, services: Sequence[str] = ()
) -> dict[str, Any]:
    """`model`'s JSON Schema, inlined and plain, with `service` for `event_type_id` if asked."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema = _plain(raw, raw.get("$defs", {}))
    properties: dict[str, Any] = schema["properties"]
    required: list[str] = list(schema.get("required", []))
    if by_service:
        # RetellAgents.resolve turns the service's name into the event type before validation.
        service = _plain(ServiceArg.model_json_schema(), {})["properties"]["service"]
        if services:
            service["enum"] = list(services)
        properties = {"service": service} | {
            k: v for k, v in properties.items() if k != "event_type_id"
        }
        required = ["service", *(name for name in required if name != "event_type_id")]
    return {"type": "object", "properties": properties, "required": required}


def _plain(node: Any, defs: dict[str, Any]) -> Any:
    """`node` with references inlined, titles dropped, optional fields as their one type."""
    if isinstance(node, list):
        return [_plain(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _plain({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    options = node.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        # An optional field is left out of `required`; null is not a value to offer an LLM.
        rest = [option for option in options if option != {"type": "null"}]
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        merged |= rest[0] if len(rest) == 1 else {"anyOf": rest}
        if merged.get("default", "") is None:
            del merged["default"]
        return _plain(merged, defs)
    plain: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs") or (key == "format" and value == "date-time"):
            # date-time: RFC 3339 needs an offset, and a local time in time_zone is fine here.
            continue
        if key == "properties":
            plain[key] = {name: _plain(field, defs) for name, field in value.items()}
        else:
            plain[key] = _plain(value, defs)
    return plain
