"""Audit queries: what happened on one call, to one Cal.com booking, and everywhere, in order.

They read the log through events/reads.py (`read_call`, `read_booking`, `read_all`), in the
global (transaction id, position) order and behind the transaction horizon like every
subscriber, so a page boundary never skips an event that commits late. Pages are
keyset-paginated: `next` is the cursor of a full page's last event, None on the last page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from events import reads
from events.models import RecordedEvent
from events.store import START, Cursor, EventStore

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events in global order and the cursor of the next page (None when this is the last)."""

    events: list[RecordedEvent]
    next: str | None


def _page(events: list[RecordedEvent], limit: int) -> EventPage:
    last = events[-1] if events and len(events) == limit else None
    return EventPage(events, None if last is None else str(cursor_of(last)))


def _check_limit(limit: int) -> None:
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


def cursor_of(event: RecordedEvent) -> Cursor:
    """The cursor just after `event`."""
    return Cursor(event.transaction_id, event.position)


async def call_timeline(
    pool: asyncpg.Pool, call_id: str, *, after: Cursor = START, limit: int = 100
) -> EventPage:
    """Every event of one call (its attempts, outcomes, webhooks), oldest first."""
    _check_limit(limit)
    return _page(await reads.read_call(pool, call_id, after=after, limit=limit), limit)


async def booking_history(
    pool: asyncpg.Pool, booking_uid: str, *, after: Cursor = START, limit: int = 100
) -> EventPage:
    """Every event, from every call, about one Cal.com booking uid, oldest first."""
    _check_limit(limit)
    return _page(await reads.read_booking(pool, booking_uid, after=after, limit=limit), limit)


async def feed(
    store: EventStore,
    *,
    after: Cursor = START,
    limit: int = 100,
    types: Sequence[str] | None = None,
) -> EventPage:
    """The global feed: every event (of `types`) after `after`, for consumers and audits."""
    _check_limit(limit)
    return _page(await store.read_all(after=after, limit=limit, types=types), limit)


async def booking_story(
    pool: asyncpg.Pool, store: EventStore, booking_uid: str
) -> list[RecordedEvent]:
    """A booking's history with, for context, the whole of every attempt that touched it."""
    found: dict[object, RecordedEvent] = {}
    page = EventPage([], "0")
    while page.next is not None:
        page = await booking_history(
            pool, booking_uid, after=Cursor.parse(page.next), limit=MAX_LIMIT
        )
        found.update((e.event_id, e) for e in page.events)
    attempts = {e.stream_id for e in found.values() if e.stream_id.startswith("attempt-")}
    for stream in sorted(attempts):
        found.update((e.event_id, e) for e in await store.read_stream(stream))
    return sorted(found.values(), key=cursor_of)


def rfc3339(moment: datetime) -> str:
    """A time as RFC 3339 in UTC, with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_json(event: RecordedEvent) -> dict[str, Any]:
    """An event as the audit endpoints and `--json` show it; `data` is the current version."""
    return {
        "position": event.position,
        "cursor": str(cursor_of(event)),
        "stream_id": event.stream_id,
        "version": event.version,
        "event_id": str(event.event_id),
        "type": event.type,
        "schema_version": type(event.event).schema_version,
        "data": event.event.model_dump(mode="json"),
        "metadata": event.metadata.model_dump(mode="json", exclude_none=True),
        "recorded_at": rfc3339(event.recorded_at),
    }
