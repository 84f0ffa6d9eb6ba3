"""The OpenAPI document's component schemas: request bodies from the pydantic models that parse
them, so the document cannot drift from the validation; answers written out where the body is
shaped by code (`AttemptOutcome.body`) rather than by a model."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from service.api.calcom_webhook_models import CalcomWebhook
from service.api.retell_booking import RetellFunctionCall
from service.api.webhooks_retell import RetellLifecycle
from service.booking.models import MAX_METADATA_KEYS, Appointment, BookingRequest

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _from_models() -> dict[str, Schema]:
    _, top = models_json_schema(
        [
            (BookingRequest, "validation"),
            (Appointment, "serialization"),
            (RetellFunctionCall, "validation"),
            (RetellLifecycle, "validation"),
            (CalcomWebhook, "validation"),
        ],
        ref_template=REF,
    )
    schemas: dict[str, Schema] = top["$defs"]
    # What the models check in code, said in the schema too.
    schemas["AttendeeIn"]["properties"]["time_zone"].update(
        description="An IANA time zone name the service's tz database knows",
        examples=["Europe/Berlin", "America/Argentina/Buenos_Aires", "UTC"],
    )
    schemas["BookingRequest"]["properties"]["metadata"].update(
        maxProperties=MAX_METADATA_KEYS,
        propertyNames={"minLength": 1, "maxLength": 40, "not": {"enum": ["call_id", "attempt_id"]}},
        additionalProperties={"type": "string", "maxLength": 500},
    )
    return schemas


_ERROR: Schema = {
    "type": "object",
    "description": "Every refusal: a stable code and what to do about it.",
    "properties": {
        "error": {"type": "string", "examples": ["invalid_request", "unauthorized"]},
        "detail": {
            "description": "A message, or `[{field, message}]` naming the fields at fault",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                        "required": ["field", "message"],
                    },
                },
                {"type": "object"},
            ],
        },
    },
    "required": ["error"],
}

_ATTEMPT_OUTCOME: Schema = {
    "type": "object",
    "description": "An attempt's outcome (`AttemptOutcome.body`); `error` on a final failure.",
    "properties": {
        "attempt_id": {"type": "string", "format": "uuid"},
        "status": {
            "enum": [
                "pending",
                "confirmed",
                "pending_confirmation",
                "cancelled",
                "declined",
                "rejected",
                "failed",
            ]
        },
        "appointment": ref("Appointment"),
        "reason": {"type": "string"},
        "guard": {"type": "string"},
        "detail": {},
        "retryable": {"type": "boolean"},
        "error": {"type": "string"},
        "alternatives": {
            "description": "On a refusal (409): up to three free slots nearest the requested "
            "start, within three days either side, looked up when answering; [] when none",
            "type": "array",
            "maxItems": 3,
            "items": ref("Slot"),
        },
    },
    "required": ["attempt_id", "status"],
    "additionalProperties": False,
}

_ATTEMPT_ACCEPTED: Schema = {
    "type": "object",
    "properties": {
        "attempt_id": {"type": "string", "format": "uuid"},
        "status": {"const": "pending"},
    },
    "required": ["attempt_id", "status"],
    "additionalProperties": False,
}

_RECORDED_EVENT: Schema = {
    "type": "object",
    "description": "One event of the ledger (projections/audit.py `event_json`).",
    "properties": {
        "position": {"type": "integer"},
        "cursor": {"type": "string", "description": "`after` value to continue after this event"},
        "stream_id": {"type": "string"},
        "version": {"type": "integer"},
        "event_id": {"type": "string", "format": "uuid"},
        "type": {"type": "string"},
        "schema_version": {"type": "integer"},
        "data": {"type": "object"},
        "metadata": {"type": "object"},
        "recorded_at": {"type": "string", "format": "date-time"},
    },
    "required": [
        "position",
        "cursor",
        "stream_id",
        "version",
        "event_id",
        "type",
        "schema_version",
        "data",
        "metadata",
        "recorded_at",
    ],
}

_REJECTION_PAGE: Schema = {
    "type": "object",
    "properties": {
        "from": {"type": "string", "format": "date-time"},
        "to": {"type": "string", "format": "date-time"},
        "counts": {"type": "array", "items": {"type": "object"}},
        "rejections": {"type": "array", "items": {"type": "object"}},
        "next": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["from", "to", "counts", "rejections", "next"],
}

_RETELL_ANSWER: Schema = {
    "type": "object",
    "description": "What Retell's LLM hears: a result code and one sentence to say.",
    "properties": {
        "result": {
            "enum": [
                "confirmed",
                "slot_taken",
                "try_again",
                "failed",
                "invalid",
                "conflict",
                "pending",
                "pending_confirmation",
                "cancelled",
                "declined",
                "unsupported",
                "available",
                "none",
            ]
        },
        "message": {"type": "string"},
        "attempt_id": {"type": "string", "format": "uuid"},
        "appointment_id": {"type": "string", "format": "uuid"},
        "start": {"type": "string", "format": "date-time"},
        "invalid_args": {"type": "array", "items": {"type": "string"}},
        "alternatives": {
            "description": "slot_taken: free times nearby, in the caller's local time",
            "type": "array",
            "items": ref("Slot"),
        },
        "slots": {
            "description": "check_availability: free times, in the caller's local time",
            "type": "array",
            "items": ref("Slot"),
        },
    },
    "required": ["result", "message"],
}

_CALCOM_ANSWER: Schema = {
    "type": "object",
    "properties": {
        "status": {"enum": ["recorded", "already_recorded", "ignored", "unknown_booking"]},
        "trigger": {"type": "string"},
        "recorded": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["status", "trigger", "recorded"],
}


def component_schemas() -> dict[str, Schema]:
    """Every schema of the document, by name."""
    return {
        **_from_models(),
        "Error": _ERROR,
        "AttemptOutcome": _ATTEMPT_OUTCOME,
        "AttemptAccepted": _ATTEMPT_ACCEPTED,
        "AppointmentPage": {
            "type": "object",
            "properties": {
                "appointments": {"type": "array", "items": ref("Appointment")},
                "next": _nullable({"type": "string"}),
            },
            "required": ["appointments", "next"],
        },
        "RecordedEvent": _RECORDED_EVENT,
        "RejectionPage": _REJECTION_PAGE,
        "EventPage": {
            "type": "object",
            "properties": {
                "events": {"type": "array", "items": ref("RecordedEvent")},
                "next": _nullable({"type": "string"}),
            },
            "required": ["events", "next"],
        },
        "Slot": {
            "type": "object",
            "properties": {"start": {"type": "string", "format": "date-time"}},
            "required": ["start"],
            "additionalProperties": False,
        },
        "SlotList": {
            "type": "object",
            "properties": {"slots": {"type": "array", "items": ref("Slot")}},
            "required": ["slots"],
            "additionalProperties": False,
        },
        "RetellAnswer": _RETELL_ANSWER,
        "CalcomAnswer": _CALCOM_ANSWER,
    }
