"""How many events of each kind the ledger holds: exact at every look, cheap after the first.

Counting the whole log at every scrape would read every row; counting only "after the last
position" would miss an event whose transaction took a lower position but committed later (the
trap of DESIGN.md §8). So the counts are split at the transaction horizon (events/counts.py):
settled events, below it, are counted once, from the previous horizon to the new one (the first
refresh reads the whole log); recent ones, at or above it, are recounted at each refresh.
Both come from one snapshot, so their sum is exactly the committed log at that moment, and it
never goes down: rows only move from recent to settled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

from events.counts import TypeCount, count_by_type


@dataclass
class Tally:
    """Events by type; rejections by (guard, reason); failures by reason."""

    events: Counter[str] = field(default_factory=Counter)
    rejections: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, counts: Iterable[TypeCount]) -> None:
        """Add counts by type (and guard and reason)."""
        for row in counts:
            self.events[row.type] += row.n
            if row.type == "BookingRejected":
                self.rejections[(row.guard or "unknown", row.reason or "unknown")] += row.n
            elif row.type == "BookingFailed":
                self.failures[row.reason or "unknown"] += row.n

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
        since = self._horizon or 0
        counts = await count_by_type(pool, since=since)
        # Applied only once both were read: a failed refresh changes nothing.
        self._settled.add(counts.settled)
        self._recent = Tally()
        self._recent.add(counts.recent)
        self._horizon = max(counts.horizon, since)
