"""HTTP routes of the audit: timelines by call and by Cal.com booking, the feed, rejections.

Thin: they parse the query, call projections/audit.py and answer JSON. A query parameter that
cannot be read is a 422 `{"error": "invalid_query", "detail": ...}` naming it.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from events.models import registered_types
from events.store import Cursor
from projections import audit, rejections
from service.api.errors import error_response
from service.api.keys import POOL, STORE
from service.api.query import InvalidQuery, bounded_int, moment, path_text

DEFAULT_LIMIT = 100
DEFAULT_REJECTIONS_WINDOW = timedelta(days=1)


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    return bounded_int(text, name="limit", low=1, high=audit.MAX_LIMIT)


def _after(request: web.Request) -> Cursor:
    try:
        return Cursor.parse(request.query.get("after", "0"))
    except ValueError as e:
        raise InvalidQuery(f"after: {e}") from e


def _types(request: web.Request) -> list[str] | None:
    names = [n for part in request.query.getall("type", []) for n in part.split(",") if n]
    unknown = sorted(set(names) - set(registered_types()))
    if unknown:
        raise InvalidQuery(f"type: unknown event types {unknown}")
    return names or None


def _moment(request: web.Request, name: str, default: datetime) -> datetime:
    text = request.query.get(name)
    if text is None:
        return default
    return moment(text, name=name)


def _page(page: audit.EventPage) -> web.Response:
    return _json({"events": [audit.event_json(e) for e in page.events], "next": page.next})


async def call_events(request: web.Request) -> web.Response:
    """GET /v1/calls/{call_id}/events"""
    call_id = path_text(request.match_info["call_id"], name="call_id")
    after, limit = _after(request), _limit(request)
    return _page(await audit.call_timeline(request.app[POOL], call_id, after=after, limit=limit))


async def booking_events(request: web.Request) -> web.Response:
    """GET /v1/calcom-bookings/{uid}/events"""
    uid = path_text(request.match_info["uid"], name="uid")
    after, limit = _after(request), _limit(request)
    return _page(await audit.booking_history(request.app[POOL], uid, after=after, limit=limit))


async def events_feed(request: web.Request) -> web.Response:
    """GET /v1/events?after=&limit=&type="""
    after, limit, types = _after(request), _limit(request), _types(request)
    return _page(await audit.feed(request.app[STORE], after=after, limit=limit, types=types))


async def rejections_between(request: web.Request) -> web.Response:
    """GET /v1/rejections?from=&to=&after=&limit= (default: the last day)"""
    end = _moment(request, "to", datetime.now(UTC))
    start = _moment(request, "from", end - DEFAULT_REJECTIONS_WINDOW)
    if start > end:
        raise InvalidQuery(f"from ({start.isoformat()}) is after to ({end.isoformat()})")
    limit, after = _limit(request), request.query.get("after", "0")
    try:
        rejections.parse_page_cursor(after)
    except ValueError as e:
        raise InvalidQuery(f"after: {e}") from e
    page = await rejections.between(request.app[POOL], start, end, after=after, limit=limit)
    return _json(
        {
            "from": audit.rfc3339(start),
            "to": audit.rfc3339(end),
            "counts": page.counts,
            "rejections": [_rejection(row) for row in page.rejections],
            "next": page.next,
        }
    )


def _rejection(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "event_id": str(row["event_id"]),
        "attempt_id": str(row["attempt_id"]),
        "rejected_at": audit.rfc3339(row["rejected_at"]),
    }


def _answering_invalid_query(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except InvalidQuery as e:
            return error_response(422, "invalid_query", str(e))

    return answer


def add_audit_routes(app: web.Application) -> None:
    """Add the audit endpoints; they use the app's POOL and STORE."""
    app.router.add_routes(
        [
            web.get(path, _answering_invalid_query(handler))
            for path, handler in (
                ("/v1/calls/{call_id}/events", call_events),
                ("/v1/calcom-bookings/{uid}/events", booking_events),
                ("/v1/events", events_feed),
                ("/v1/rejections", rejections_between),
            )
        ]
    )
