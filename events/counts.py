"""How many events of each type the log holds, split at the transaction horizon (events/reads.py).

Counting only "after the last position" would miss an event whose transaction took a lower
position but committed later. Split at the horizon instead, a count never misses one:

- settled: events whose transaction id lies below the horizon. Every such transaction has
  finished, so no row can still appear there; a caller counting incrementally adds the rows
  between the previous horizon and the new one, and never looks at them again;
- recent: events at or above the horizon that are visible now (a handful: only transactions
  younger than the oldest one still running), to be recounted at every look.

Both are read in one REPEATABLE READ snapshot, so their sum is exactly the committed log at that
moment, and it never goes down: rows only move from recent to settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import asyncpg

_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())"

# Settled: the rows between the previous horizon and this one.
_SETTLED = """
SELECT type,
       CASE WHEN type = 'BookingRejected' THEN data ->> 'guard' END AS guard,
       CASE WHEN type IN ('BookingRejected', 'BookingFailed') THEN data ->> 'reason' END AS reason,
       count(*) AS n
  FROM events
 WHERE transaction_id >= $1::xid8 AND transaction_id < $2::xid8
 GROUP BY 1, 2, 3
"""

# Recent: the rows at or above the horizon that this snapshot sees.
_RECENT = """
SELECT type,
       CASE WHEN type = 'BookingRejected' THEN data ->> 'guard' END AS guard,
       CASE WHEN type IN ('BookingRejected', 'BookingFailed') THEN data ->> 'reason' END AS reason,
       count(*) AS n
  FROM events
 WHERE transaction_id >= $1::xid8
 GROUP BY 1, 2, 3
"""


class TypeCount(NamedTuple):
    """How many events of one type; for rejections by guard and reason, failures by reason."""

    type: str
    guard: str | None
    reason: str | None
    n: int


@dataclass(frozen=True, slots=True)
class HorizonCounts:
    """The log's counts in one snapshot, split at `horizon` (a transaction id)."""

    horizon: int
    settled: list[TypeCount]  # transaction ids from `since` up to the horizon
    recent: list[TypeCount]  # transaction ids at or above the horizon


async def count_by_type(pool: asyncpg.Pool, *, since: int = 0) -> HorizonCounts:
    """Events by type, settled since the horizon `since` (0: the whole log) and recent, now."""
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        horizon: int = await conn.fetchval(_HORIZON)
        settled = await conn.fetch(_SETTLED, since, horizon) if horizon > since else []
        recent = await conn.fetch(_RECENT, horizon)
    return HorizonCounts(
        horizon,
        [TypeCount(*row) for row in settled],
        [TypeCount(*row) for row in recent],
    )
