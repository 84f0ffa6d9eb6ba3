"""One middleware maps every error to a JSON body `{"error": code, "detail": ...}`."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError
from pydantic import ValidationError

from events.errors import TRANSIENT_DATABASE_ERRORS
from service.booking.attempt import AttemptInFlight, BookingInputError, IdempotencyKeyReused
from service.booking.event_kinds import UnsupportedEventType

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 2
CONFLICT_RETRY_AFTER_SECONDS = 1


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
    408: "request_timeout",
    422: "invalid_query",
    431: "request_header_fields_too_large",
}


def error_code(status: int) -> str:
    """The `error` code of an answer with this status when nothing more precise is known."""
    if status >= 500:
        return "internal_error"
    return _STATUS_CODES.get(status, "http_error")


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
    except TRANSIENT_DATABASE_ERRORS as e:
        # The database is away (a restart, a failover, a lost connection; events/errors.py
        # lists what that looks like): the producer's retry may succeed.
        log.warning("database unavailable: %s", e)
        return error_response(
            503,
            "database_unavailable",
            "PostgreSQL cannot be reached; retry later",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as e:
        # 40P01, 40001: PostgreSQL rolled one transaction back so that another could go on. The
        # loser wrote nothing; a retry (same Idempotency-Key) goes on from what was committed.
        log.warning("database conflict: %s", e)
        return error_response(
            503,
            "database_conflict",
            "a concurrent transaction conflicted with this one; retry",
            headers={"Retry-After": str(CONFLICT_RETRY_AFTER_SECONDS)},
        )
    except RequestPayloadError as e:
        # The body's bytes could not be decoded (Content-Encoding that lies, broken chunks):
        # aiohttp raises it from request.read(), deep in a handler; it is the client's fault.
        return _closing(request, error_response(400, "bad_request", _payload_detail(request, e)))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _STATUS_CODES.get(e.status, "http_error")
        response = error_response(e.status, code, e.reason, headers=_kept_headers(e))
        # 408: the body did not arrive in time; the connection is not worth keeping.
        return _closing(request, response) if e.status == 408 else response
    except asyncpg.PostgresError as e:
        # The database refused a statement for a reason no retry fixes (a missing grant, say):
        # the operator's problem, named in the log with its SQLSTATE; the client gets JSON.
        log.exception("the database refused a statement (SQLSTATE %s)", e.sqlstate)
        return error_response(
            500, "database_error", "the database refused the request; the service log says why"
        )
    except Exception:  # the edge's last word: logged in full, answered as JSON
        # A bug must still answer the contract's JSON body (never aiohttp's text/plain 500 or a
        # library repr), and the traceback must reach the log, not the client.
        log.exception("unhandled error while answering %s %s", request.method, request.path)
        return error_response(500, "internal_error", "an internal error; the service log says why")


def _closing(request: web.Request, response: web.Response) -> web.Response:
    """`response`, closing the connection after it without reading the rest of the body."""
    # Mark the payload finished too: otherwise aiohttp drains it after the handler (for up to
    # its lingering time, 10 s, from a client that may be trickling bytes) or meets a payload
    # error again and logs an "Unhandled exception" with a traceback per hostile request.
    response.force_close()
    request.content.feed_eof()
    return response


def _payload_detail(request: web.Request, error: RequestPayloadError) -> str:
    encoding = request.headers.get("Content-Encoding")
    if encoding:
        return f"the body cannot be decoded as its Content-Encoding ({encoding[:40]}) says"
    return f"the body cannot be read: {str(error)[:200]}"


def _kept_headers(e: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in e.headers.items() if k in ("Allow", "WWW-Authenticate")}
