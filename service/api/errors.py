"""One middleware maps every error to a JSON body `{"error": code, "detail": ...}`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from events.errors import DatabaseUnavailable
from service.booking.attempt import AttemptInFlight, BookingInputError, IdempotencyKeyReused
from service.booking.event_kinds import UnsupportedEventType

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 2


def error_response(
    status: int, error: str, detail: Any = None, *, headers: dict[str, str] | None = None
) -> web.Response:
    """The contract's error body."""
    body: dict[str, Any] = {"error": error}
    if detail is not None:
        body["detail"] = detail
    return web.json_response(body, status=status, headers=headers)


def validation_detail(error: ValidationError) -> list[dict[str, str]]:
    """pydantic's errors as `[{"field": "attendee.email", "message": ...}]`."""
    return [
        {
            "field": ".".join(str(part) for part in e["loc"]) or "body",
            "message": e["msg"],
        }
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_query",
}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate errors into JSON answers; the service keeps serving whatever happens."""
    try:
        return await handler(request)
    except ValidationError as e:
        return error_response(422, "invalid_request", validation_detail(e))
    except BookingInputError as e:
        return error_response(422, "invalid_request", [{"field": e.field, "message": e.message}])
    except UnsupportedEventType as e:
        return error_response(
            422,
            "unsupported_event_type",
            {"event_type_id": e.event_type_id, "kind": e.kind, "message": str(e)},
        )
    except IdempotencyKeyReused as e:
        return error_response(422, "idempotency_key_reused", str(e))
    except AttemptInFlight as e:
        return error_response(
            409,
            "attempt_in_flight",
            {"attempt_id": str(e.attempt_id), "message": str(e)},
            headers={"Retry-After": str(e.retry_after)},
        )
    except (
        DatabaseUnavailable,
        OSError,
        asyncpg.PostgresConnectionError,
        # 57P01-57P03: the server is shutting down or starting up (a restart, a failover).
        asyncpg.OperatorInterventionError,
        # "connection is closed": the server ended the session under us.
        asyncpg.InterfaceError,
        # What asyncpg sometimes raises instead on a session the server terminated ("cannot
        # switch to state 15; another operation is in progress", MagicStack/asyncpg#1069); the
        # pool terminates that connection on release, so the producer's retry gets a fresh one.
        asyncpg.InternalClientError,
    ) as e:
        log.warning("database unavailable: %s", e)
        return error_response(
            503,
            "database_unavailable",
            "PostgreSQL cannot be reached; retry later",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _STATUS_CODES.get(e.status, "http_error")
        return error_response(e.status, code, e.reason, headers=_kept_headers(e))


def _kept_headers(e: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in e.headers.items() if k in ("Allow", "WWW-Authenticate")}
