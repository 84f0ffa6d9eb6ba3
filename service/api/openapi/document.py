"""`GET /openapi.json`: the service's OpenAPI 3.1 document, built from the models at first use."""

from __future__ import annotations

import functools
from typing import Any, Final

import orjson
from aiohttp import web

from service.api.openapi.docs_page import add_docs_routes
from service.api.openapi.paths import (
    JSON,
    OPEN,
    all_paths,
    error_responses,
    header_param,
    json_content,
)
from service.api.openapi.schemas import Schema, component_schemas, ref

PATH: Final = "/openapi.json"


_CALL = {"call_id": "call_39d2ade6f4fc16c51110ca49cdf", "agent_id": "agent_1"}
RETELL_EXAMPLES: Final = {
    "function call": {
        "value": {
            "name": "book_appointment",
            "call": {**_CALL, "from_number": "+4930123456"},
            "args": {
                "start": "2026-03-02T09:00:00",
                "time_zone": "Europe/Berlin",
                "event_type_id": 1002,
                "name": "Hans Schuster",
                "email": "hans@example.com",
            },
        }
    },
    "availability": {
        "value": {
            "name": "check_availability",
            "call": _CALL,
            "args": {"service": "Beratung", "day": "2026-03-02", "time_zone": "Europe/Berlin"},
        }
    },
    "call ended": {"value": {"event": "call_ended", "call": {**_CALL, "call_status": "ended"}}},
}
CALCOM_EXAMPLES: Final = {
    "cancelled": {
        "value": {
            "triggerEvent": "BOOKING_CANCELLED",
            "createdAt": "2026-03-01T10:00:00.000Z",
            "payload": {
                "uid": "8Fxv4pCqnb1Jva1w9wn5wX",
                "startTime": "2026-03-02T08:00:00Z",
                "status": "CANCELLED",
                "cancellationReason": "The caller cannot make it",
                "metadata": {"call_id": "call_39d2ade6f4fc16c51110ca49cdf"},
            },
        }
    }
}


def _webhook_paths() -> dict[str, Schema]:
    return {
        "/v1/webhooks/retell": {
            "post": {
                "operationId": "retellWebhook",
                "summary": "Retell: the book_appointment and check_availability function calls, "
                "and call lifecycle webhooks",
                "security": OPEN,
                "parameters": [
                    header_param(
                        "x-retell-signature",
                        {"type": "string"},
                        "v=<unix ms>,d=<hex HMAC-SHA256(RETELL_API_KEY, body + ms)>",
                        required=True,
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {
                            "schema": {
                                "anyOf": [ref("RetellFunctionCall"), ref("RetellLifecycle")]
                            },
                            "examples": RETELL_EXAMPLES,
                        }
                    },
                },
                "responses": {
                    "200": json_content(
                        "The function call's answer for the agent", ref("RetellAnswer")
                    ),
                    "204": {"description": "Lifecycle event recorded (or not kept)"},
                    **error_responses(400, 401, 413, 422, 503),
                },
            }
        },
        "/v1/webhooks/calcom": {
            "post": {
                "operationId": "calcomWebhook",
                "summary": "Cal.com: BOOKING_CREATED, BOOKING_CANCELLED, BOOKING_RESCHEDULED",
                "security": OPEN,
                "parameters": [
                    header_param(
                        "X-Cal-Signature-256",
                        {"type": "string"},
                        "hex HMAC-SHA256(CALCOM_WEBHOOK_SECRET, body)",
                        required=True,
                    )
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        JSON: {"schema": ref("CalcomWebhook"), "examples": CALCOM_EXAMPLES}
                    },
                },
                "responses": {
                    "200": json_content("Recorded, or already recorded", ref("CalcomAnswer")),
                    "202": json_content(
                        "A trigger booking-guard does not keep", ref("CalcomAnswer")
                    ),
                    **error_responses(400, 401, 409, 413, 422, 503),
                },
            }
        },
    }


def _operations_paths() -> dict[str, Schema]:
    def get(operation_id: str, summary: str, response: Schema) -> Schema:
        return {
            "get": {
                "operationId": operation_id,
                "summary": summary,
                "security": OPEN,
                "responses": response,
            }
        }

    return {
        "/health": get(
            "health", "The process is alive", {"200": json_content("Alive", {"type": "object"})}
        ),
        "/ready": get(
            "ready",
            "PostgreSQL answers and projectors keep up",
            {
                "200": json_content("Ready", {"type": "object"}),
                "503": json_content("Not ready, and why", {"type": "object"}),
            },
        ),
        "/metrics": get(
            "metrics",
            "Prometheus text format",
            {
                "200": {
                    "description": "Metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        PATH: get(
            "openapi", "This document", {"200": json_content("OpenAPI 3.1", {"type": "object"})}
        ),
    }


# Groups of operations, in the order a reader meets them (Swagger UI shows one section each).
TAGS: Final = {
    "bookings": "Book a slot exactly once; read an attempt's outcome",
    "appointments": "The appointments booked, as the ledger holds them",
    "slots": "Free slots, from Cal.com",
    "audit": "What happened: the events of a call, of a booking, of the whole ledger",
    "webhooks": "Signed calls from Retell and Cal.com",
    "operations": "Health, readiness, metrics and this document",
}
_TAG_OF_PATH: Final = {
    "/v1/booking-attempts": "bookings",
    "/v1/booking-attempts/{attempt_id}": "bookings",
    "/v1/appointments": "appointments",
    "/v1/appointments/{appointment_id}": "appointments",
    "/v1/slots": "slots",
    "/v1/calls/{call_id}/events": "audit",
    "/v1/calcom-bookings/{uid}/events": "audit",
    "/v1/events": "audit",
    "/v1/rejections": "audit",
    "/v1/webhooks/retell": "webhooks",
    "/v1/webhooks/calcom": "webhooks",
    "/health": "operations",
    "/ready": "operations",
    "/metrics": "operations",
    PATH: "operations",
}


def _tagged(paths: dict[str, Schema]) -> dict[str, Schema]:
    # A path without a tag is a KeyError here, at the first request for the document (and in
    # tests/e2e/test_openapi.py), rather than an operation filed under "default".
    return {
        path: {
            method: {**operation, "tags": [_TAG_OF_PATH[path]]}
            for method, operation in operations.items()
        }
        for path, operations in paths.items()
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The whole document (built once: it depends only on the code)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "booking-guard",
            "version": "1",
            "description": "Books Cal.com appointments for AI phone agents exactly once. "
            'Errors are `{"error": code, "detail": ...}`.',
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": _tagged({**all_paths(), **_webhook_paths(), **_operations_paths()}),
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token of BOOKING_GUARD_API_TOKENS (no auth when unset)",
                }
            },
        },
    }


_BODY: Final = functools.cache(lambda: orjson.dumps(openapi_document()))


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json"""
    return web.Response(body=_BODY(), content_type=JSON)


def add_openapi_route(app: web.Application) -> None:
    """The document, and the page that shows it (`/docs`)."""
    app.router.add_get(PATH, openapi_json)
    add_docs_routes(app)
