"""The rejections read model: every BookingRejected, for listings over a time range.

Kept by the projector runner (asynchronously: a rejection shows up here a moment after it is
recorded) and rebuilt by replay. Every value comes from the event, so a rebuild is identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg

from events.booking import BookingRejected
from events.models import RecordedEvent
from events.replay_reads import LoggedData
from events.store import Connection
from projections.projection import Projection

NAME: Final = "rejections"
TABLE: Final = "rejections"
HANDLED_TYPES: Final = ("BookingRejected",)

# Table names are never input: only these may be formatted into the statement below.
_TABLES: Final = frozenset({TABLE, f"{TABLE}_rebuild"})


def _insert(table: str) -> str:
    return f"""
INSERT INTO {table} (event_id, position, attempt_id, call_id, guard, layer, reason, booking_uid,
                     detail, rejected_at)
SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::int[],
                     $7::text[], $8::text[], $9::jsonb[], $10::timestamptz[])
"""


async def apply_batch(connection: Connection, events: Sequence[RecordedEvent], table: str) -> None:
    """Insert a row per BookingRejected, in one statement."""
    if table not in _TABLES:
        raise ValueError(f"unknown rejections table {table!r}")
    columns: list[list[Any]] = [[] for _ in range(10)]
    for recorded in events:
        event = recorded.event
        if not isinstance(event, BookingRejected):
            continue
        row = (
            recorded.event_id,
            recorded.position,
            event.attempt_id,
            event.call_id,
            event.guard,
            event.layer,
            event.reason,
            event.booking_uid,
            event.detail,
            event.rejected_at,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    if columns[0]:
        await connection.execute(_insert(table), *columns)


async def replay_batch(connection: Connection, events: Sequence[LoggedData], table: str) -> None:
    """Replay's path: the same rows from the events' JSON data, without models, in the one
    unnest statement `apply_batch` sends (jsonb has no binary COPY encoder here).

    The values are those `apply_batch` writes (the ids as the JSON's canonical strings, which
    asyncpg encodes as uuid; the detail as stored), so a rebuild is identical.
    """
    if table not in _TABLES:
        raise ValueError(f"unknown rejections table {table!r}")
    records = []
    for logged in events:
        if logged.type != "BookingRejected":
            continue
        d = logged.data
        records.append(
            (
                logged.event_id,
                logged.position,
                d["attempt_id"],
                d["call_id"],
                d["guard"],
                d.get("layer"),
                d["reason"],
                d.get("booking_uid"),
                d.get("detail", {}),
                datetime.fromisoformat(d["rejected_at"]),
            )
        )
    if records:
        await connection.execute(
            _insert(table), *(list(column) for column in zip(*records, strict=True))
        )


def replay_insert(table: str) -> str:
    """Replay's fill inside PostgreSQL: the rows `replay_batch` writes, from a batch of events
    the server reads itself (events/replay_reads.py, `insert_data_batch`). The values are the
    stored JSON's, cast as asyncpg casts `replay_batch`'s (the session's TimeZone is UTC, as
    for the COPY of naive times), so a rebuild is identical; `detail` is the stored jsonb."""
    if table not in _TABLES:
        raise ValueError(f"unknown rejections table {table!r}")
    return f"""
INSERT INTO {table} (event_id, position, attempt_id, call_id, guard, layer, reason, booking_uid,
                     detail, rejected_at)
SELECT event_id, position, (data ->> 'attempt_id')::uuid, data ->> 'call_id', data ->> 'guard',
       (data ->> 'layer')::int, data ->> 'reason', data ->> 'booking_uid',
       coalesce(data -> 'detail', '{{}}'::jsonb), (data ->> 'rejected_at')::timestamptz
  FROM logged
 WHERE type = 'BookingRejected'
"""


PROJECTION: Final = Projection(
    name=NAME,
    types=HANDLED_TYPES,
    table=TABLE,
    apply_batch=apply_batch,
    replay_batch=replay_batch,
    replay_insert=replay_insert,
    # Rows are only ever inserted: the fill needs no index, they are built after it.
    fill_indexes=(),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LIST = """
SELECT position, event_id, attempt_id, call_id, guard, layer, reason, booking_uid, detail,
       rejected_at
  FROM rejections
 WHERE rejected_at >= $1 AND rejected_at < $2
   AND (rejected_at, position) > ($3::timestamptz, $4::bigint)
 ORDER BY rejected_at, position
 LIMIT $5
"""
_COUNTS = """
SELECT guard, reason, count(*) AS count
  FROM rejections
 WHERE rejected_at >= $1 AND rejected_at < $2
 GROUP BY guard, reason
 ORDER BY count DESC, guard, reason
"""


@dataclass(frozen=True, slots=True)
class RejectionsPage:
    """One page of rejections in time order, the reason counts of the whole range, and `next`."""

    rejections: list[dict[str, Any]]
    counts: list[dict[str, Any]]
    next: str | None


def page_cursor(rejected_at: datetime, position: int) -> str:
    """The opaque `next` of a rejections page: microseconds since the epoch and the position."""
    return f"{(rejected_at - _EPOCH) // timedelta(microseconds=1)}.{position}"


def parse_page_cursor(text: str) -> tuple[datetime, int]:
    """Read a cursor written by `page_cursor`; "0" means the start."""
    if text == "0":
        return datetime.min.replace(tzinfo=UTC), 0
    micros, sep, position = text.partition(".")
    digits = micros.removeprefix("-")
    # ASCII digits of a size the columns hold: "²" passes str.isdigit(), and a huge number
    # overflows timedelta or asyncpg's bigint.
    if (
        not sep
        or not (digits.isascii() and digits.isdigit() and len(digits) <= 18)
        or not (position.isascii() and position.isdigit() and len(position) <= 18)
    ):
        raise ValueError(f"a rejections cursor looks like '<micros>.<position>', got {text[:60]!r}")
    try:
        return _EPOCH + timedelta(microseconds=int(micros)), int(position)
    except OverflowError as e:
        raise ValueError(f"a rejections cursor beyond the calendar: {text[:60]!r}") from e


async def between(
    executor: Connection | asyncpg.Pool,
    start: datetime,
    end: datetime,
    *,
    after: str = "0",
    limit: int = 100,
) -> RejectionsPage:
    """Rejections with `start <= rejected_at < end`, keyset-paginated, and their counts."""
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    after_at, after_position = parse_page_cursor(after)
    rows = await executor.fetch(_LIST, start, end, after_at, after_position, limit)
    counts = await executor.fetch(_COUNTS, start, end)
    last = rows[-1] if len(rows) == limit else None
    return RejectionsPage(
        rejections=[dict(row) for row in rows],
        counts=[dict(row) for row in counts],
        next=None if last is None else page_cursor(last["rejected_at"], last["position"]),
    )
