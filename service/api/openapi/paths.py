"""The OpenAPI document's paths: every route of the service, its parameters and answers."""

from __future__ import annotations

from typing import Final

from service.api.openapi.schemas import Schema, ref

JSON: Final = "application/json"


def json_content(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error_responses(*statuses: int) -> dict[str, Schema]:
    described = {
        400: "Malformed: not JSON, not UTF-8, nested too deep, a bad header",
        401: "No valid bearer token (WWW-Authenticate: Bearer) or webhook signature",
        404: "No such resource",
        409: "Conflicts with what the ledger holds",
        413: "The body is larger than the limit",
        415: "The body is not application/json",
        422: "Well-formed but invalid; `detail` names the fields",
        503: "Not configured, or PostgreSQL unreachable (Retry-After)",
    }
    return {str(s): json_content(described[s], ref("Error")) for s in statuses}


def query_param(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def path_param(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def header_param(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "schema": schema,
        "description": description,
    }


BOOKING_EXAMPLES: Final = {
    "call 688": {
        "value": {
            "call_id": "call_39d2ade6f4fc16c51110ca49cdf",
            "event_type_id": 1001,
            "start": "2026-03-02T08:00:00Z",
            "attendee": {
                "name": "Hans Schuster",
                "email": "hans@example.com",
                "time_zone": "Europe/Berlin",
                "phone_number": "+4930123456",
            },
            "metadata": {"source": "retell"},
        }
    }
}
PROTECTED: Final[list[Schema]] = [{"bearerAuth": []}]
OPEN: Final[list[Schema]] = []
_CURSOR = {"type": "string", "pattern": r"^(0|[0-9]+\.[0-9]+)$"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}
_TIME = {"type": "string", "format": "date-time"}
_ANY_OUTCOME = {"anyOf": [ref("AttemptOutcome"), ref("Error")]}
# Where an attempt's answer leads: its own outcome, and its call's audit timeline. Clients read
# them as documentation; schemathesis follows them to test create -> read -> audit as a sequence
# (tests/e2e/properties/test_stateful.py).
_ATTEMPT_LINKS: Schema = {
    "GetBookingAttempt": {
        "operationId": "getBookingAttempt",
        "parameters": {"attempt_id": "$response.body#/attempt_id"},
        "description": "The attempt's outcome, as it is now (replays never book again).",
    },
    "CallEvents": {
        "operationId": "callEvents",
        "parameters": {"call_id": "$request.body#/call_id"},
        "description": "The audit timeline of the attempt's call.",
    },
}


def _linked(response: Schema) -> Schema:
    return {**response, "links": _ATTEMPT_LINKS}


def _booking_paths() -> dict[str, Schema]:
    return {
        "/v1/booking-attempts": {
            "post": {
                "operationId": "createBookingAttempt",
                "summary": "Book one slot for one call, exactly once",
                "security": PROTECTED,
                "parameters": [
                    header_param(
                        "Idempotency-Key",
                        {"type": "string", "minLength": 1, "maxLength": 255},
                        "Makes retries safe; default: call id, event type and start",
                    ),
                    header_param(
                        "Prefer",
                        {"type": "string"},
                        "`respond-async`: answer 202 and book in the background",
                    ),
                    header_param(
                        "X-Correlation-Id",
                        {"type": "string", "maxLength": 200},
                        "Recorded on the attempt's events",
                    ),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": ref("BookingRequest"), "examples": BOOKING_EXAMPLES}
                    },
                },
                "responses": {
                    "201": _linked(json_content("Confirmed", ref("AttemptOutcome"))),
                    "200": _linked(
                        json_content("This call already holds this booking", ref("AttemptOutcome"))
                    ),
                    "202": _linked(
                        {
                            **json_content(
                                "Accepted (Prefer: respond-async); poll Location",
                                ref("AttemptAccepted"),
                            ),
                            "headers": {"Location": {"schema": {"type": "string"}}},
                        }
                    ),
                    "409": json_content(
                        "Rejected by a guard, or the key's attempt is in flight", _ANY_OUTCOME
                    ),
                    "422": json_content(
                        "Invalid input, key reused, or Cal.com refused it", _ANY_OUTCOME
                    ),
                    "502": _linked(
                        json_content("Cal.com failed (retryable)", ref("AttemptOutcome"))
                    ),
                    "503": json_content(
                        "Cal.com unavailable, or PostgreSQL unreachable", _ANY_OUTCOME
                    ),
                    "504": _linked(
                        json_content("Cal.com timed out (retryable)", ref("AttemptOutcome"))
                    ),
                    **error_responses(400, 401, 413, 415),
                },
            }
        },
        "/v1/booking-attempts/{attempt_id}": {
            "get": {
                "operationId": "getBookingAttempt",
                "summary": "An attempt's outcome; `pending` while in flight",
                "security": PROTECTED,
                "parameters": [path_param("attempt_id", {"type": "string", "format": "uuid"})],
                "responses": {
                    "200": json_content("The outcome", ref("AttemptOutcome")),
                    **error_responses(401, 404),
                },
            }
        },
        "/v1/appointments": {
            "get": {
                "operationId": "listAppointments",
                "summary": "Appointments in start order, keyset-paginated",
                "security": PROTECTED,
                "parameters": [
                    query_param(
                        "call_id", {"type": "string", "maxLength": 128}, "Only this call's"
                    ),
                    query_param("from", _TIME, "Starting at or after"),
                    query_param("to", _TIME, "Starting before"),
                    query_param("limit", _LIMIT, "Page size (default 100)"),
                    query_param(
                        "after", {"type": "string"}, "The `next` cursor of the previous page"
                    ),
                ],
                "responses": {
                    "200": json_content("A page", ref("AppointmentPage")),
                    **error_responses(401, 422),
                },
            }
        },
        "/v1/slots": {
            "get": {
                "operationId": "listSlots",
                "summary": "Free slots of an event type, from Cal.com (at most 31 days)",
                "security": PROTECTED,
                "parameters": [
                    {
                        **query_param(
                            "event_type_id",
                            {"type": "integer", "minimum": 1},
                            "The Cal.com event type",
                        ),
                        "required": True,
                    },
                    {**query_param("from", _TIME, "Free starts at or after"), "required": True},
                    {
                        **query_param("to", _TIME, "Free starts at or before (31 days at most)"),
                        "required": True,
                    },
                    query_param("time_zone", {"type": "string"}, "IANA zone (default UTC)"),
                ],
                "responses": {
                    "200": json_content("Free starts, sorted, in UTC", ref("SlotList")),
                    "502": json_content("Cal.com could not answer (Retry-After)", ref("Error")),
                    **error_responses(401, 422),
                },
            }
        },
        "/v1/appointments/{appointment_id}": {
            "get": {
                "operationId": "getAppointment",
                "summary": "One appointment",
                "security": PROTECTED,
                "parameters": [path_param("appointment_id", {"type": "string", "format": "uuid"})],
                "responses": {
                    "200": json_content("The appointment", ref("Appointment")),
                    **error_responses(401, 404),
                },
            }
        },
    }


def _audit_paths() -> dict[str, Schema]:
    page = {
        "200": json_content("Events in log order, with a `next` cursor", ref("EventPage")),
        **error_responses(401, 422),
    }
    paging = [
        query_param("after", _CURSOR, "A `next` cursor, or 0 for the start"),
        query_param("limit", _LIMIT, "Page size"),
    ]
    return {
        "/v1/calls/{call_id}/events": {
            "get": {
                "operationId": "callEvents",
                "summary": "The audit timeline of one call",
                "security": PROTECTED,
                "parameters": [
                    path_param("call_id", {"type": "string", "maxLength": 128}),
                    *paging,
                ],
                "responses": page,
            }
        },
        "/v1/calcom-bookings/{uid}/events": {
            "get": {
                "operationId": "calcomBookingEvents",
                "summary": "Every event, from every call, about one Cal.com booking",
                "security": PROTECTED,
                "parameters": [path_param("uid", {"type": "string", "maxLength": 128}), *paging],
                "responses": page,
            }
        },
        "/v1/events": {
            "get": {
                "operationId": "eventFeed",
                "summary": "The global feed: every committed event in order, never skipping one",
                "security": PROTECTED,
                "parameters": [
                    query_param(
                        "after", _CURSOR, "Cursor `<transaction id>.<position>`, or 0 for the start"
                    ),
                    query_param("limit", _LIMIT, "Page size"),
                    query_param(
                        "type", {"type": "string"}, "Only events of these types (comma-separated)"
                    ),
                ],
                "responses": page,
            }
        },
        "/v1/rejections": {
            "get": {
                "operationId": "listRejections",
                "summary": "Rejections over a time range, with counts by reason",
                "security": PROTECTED,
                "parameters": [
                    query_param("from", _TIME, "Rejected at or after"),
                    query_param("to", _TIME, "Rejected before (default: now; from: a day before)"),
                    query_param("after", {"type": "string"}, "The `next` cursor of the last page"),
                    query_param("limit", _LIMIT, "Page size"),
                ],
                "responses": {
                    "200": json_content("Rejections and counts by reason", ref("RejectionPage")),
                    **error_responses(401, 422),
                },
            }
        },
    }


def all_paths() -> dict[str, Schema]:
    """The API's paths: booking and audit (webhooks and operations: openapi/document.py)."""
    return {**_booking_paths(), **_audit_paths()}
