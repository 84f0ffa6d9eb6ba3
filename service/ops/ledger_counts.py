"""How many events of each kind the ledger holds: exact at every look, cheap after the first.

Counting the whole log at every scrape would read every row; counting only "after the last
position" would miss an event whose transaction took a lower position but committed later (the
trap of DESIGN.md §8). So the counts are split at the transaction horizon, `pg_snapshot_xmin`:

- settled: events whose transaction id lies below the horizon. Every such transaction has
  finished, so no row can still appear there; each refresh adds the rows between the previous
  horizon and the new one, and never looks at them again (the first refresh reads the whole log);
- recent: events at or above the horizon that are visible now, recounted at each refresh (a
  handful: only transactions younger than the oldest one still running).

Both are read in one REPEATABLE READ snapshot, so their sum is exactly the committed log at that
moment, and it never goes down: rows only move from recent to settled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

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


@dataclass
class Tally:
    """Events by type; rejections by (guard, reason); failures by reason."""

    events: Counter[str] = field(default_factory=Counter)
    rejections: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, rows: Iterable[asyncpg.Record]) -> None:
        """Add the rows of a `_SETTLED` or `_RECENT` query."""
        for row in rows:
            n: int = row["n"]
            self.events[row["type"]] += n
            if row["type"] == "BookingRejected":
                self.rejections[(row["guard"] or "unknown", row["reason"] or "unknown")] += n
            elif row["type"] == "BookingFailed":
                self.failures[row["reason"] or "unknown"] += n

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.events + other.events,
            self.rejections + other.rejections,
            self.failures + other.failures,
        )


class LedgerCounts:
    """The ledger's counts, refreshed on demand; `total()` is None until first counted."""

    def __init__(self) -> None:
        self._horizon: int | None = None
        self._settled = Tally()
        self._recent = Tally()

    def total(self) -> Tally | None:
        """Settled plus recent, as of the last refresh."""
        if self._horizon is None:
            return None
        return self._settled + self._recent

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """Count what is new since the last refresh, in one snapshot."""
        async with (
            pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            horizon: int = await conn.fetchval(_HORIZON)
            since = self._horizon or 0
            settled = await conn.fetch(_SETTLED, since, horizon) if horizon > since else []
            recent = await conn.fetch(_RECENT, horizon)
        # Applied only once both were read: a failed refresh changes nothing.
        self._settled.add(settled)
        self._recent = Tally()
        self._recent.add(recent)
        self._horizon = max(horizon, since)
