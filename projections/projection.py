"""What a projection is: a name, the event types it reads, and how it applies them.

The runner (projections/runner.py) feeds a projection one batch at a time and advances its
checkpoint in the same transaction; replay (projections/rebuild.py) feeds the whole log into a
twin of its table and swaps the twin in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from events.models import RecordedEvent
from events.replay_reads import LoggedData
from events.store import Connection, Cursor

ApplyBatch = Callable[[Connection, Sequence[RecordedEvent], str], Awaitable[None]]
"""Apply events, in order, to the named table: the live one or its `<table>_rebuild` twin."""

ReplayBatch = Callable[[Connection, Sequence[LoggedData], str], Awaitable[None]]
"""The same from events' JSON data, without models: replay's fast path (COPY)."""

ReplayInsert = Callable[[str], str]
"""The `INSERT INTO <table> … SELECT … FROM logged` that fills the named table from a batch of
events inside PostgreSQL (events/replay_reads.py, `insert_data_batch`)."""


class Replayer(Protocol):
    """One rebuild's fill, when a projection folds the log itself: `batch` is given each batch
    in log order (it may only accumulate), `finish` writes the twin(s) once, at the end. The
    swap's catch-up still goes through `replay_batch` (or `apply_batch`) on the filled twin."""

    async def batch(
        self, connection: Connection, events: Sequence[LoggedData], table: str
    ) -> None: ...

    async def finish(self, connection: Connection, table: str) -> None: ...

    async def start(
        self, connection: Connection, types: Sequence[str], table: str, upto: Cursor
    ) -> tuple[int, str, tuple[str, ...]]:
        """Before the first batch: write into the twin(s), inside PostgreSQL, what needs no
        fold, from the events up to `upto`; return how many events that took, a condition
        (SQL on the events table, "" for none) keeping the events still to be given to
        `batch`, read on `connection`, and the types (of `types`) they may be."""
        ...

    async def close(self, connection: Connection) -> None:
        """After the fill, on `start`'s connection: drop what `start` made there."""
        ...


@dataclass(frozen=True, slots=True)
class Projection:
    """A read model derived from the log, kept in one table.

    `inline` projections are written by the transaction that appends their events (appointments:
    its unique index is a guard), so no runner keeps them and they have no checkpoint; they are
    only ever rebuilt. The others are kept by a runner.

    Replay fills the twin with `replay_batch` when given (else `apply_batch`), with only the
    indexes named in `fill_indexes` (those its updates look rows up by, and the unique ones that
    must refuse as they go); it builds the rest after the fill, which is faster than updating
    them row by row. None means every index during the fill.
    """

    name: str
    types: tuple[str, ...]
    table: str
    apply_batch: ApplyBatch
    replay_batch: ReplayBatch | None = None
    fill_indexes: tuple[str, ...] | None = None
    inline: bool = False
    # Tables the projection keeps beside `table` (appointments: booking_states); replay fills
    # a twin of each with every index, and swaps them in with the main one.
    side_tables: tuple[str, ...] = ()
    # A new Replayer per rebuild (needs `replay_batch` too: the catch-up uses it).
    replayer: Callable[[], Replayer] | None = None
    # For a projection whose rows are each one event's fields, in no order among themselves:
    # replay's fill runs this in PostgreSQL, one statement per batch (needs `replay_batch` too,
    # for events at an older schema version and for the catch-up).
    replay_insert: ReplayInsert | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.types:
            raise ValueError(f"a projection needs a name and event types, got {self!r}")
        if self.replayer is not None and self.replay_batch is None:
            raise ValueError(f"{self.name}: a replayer needs replay_batch for the catch-up")
        if self.replay_insert is not None and (self.replay_batch is None or self.replayer):
            raise ValueError(f"{self.name}: replay_insert needs replay_batch and no replayer")

    @property
    def rebuild_table(self) -> str:
        """The twin table a replay fills before swapping it in."""
        return f"{self.table}_rebuild"

    async def apply(self, connection: Connection, event: RecordedEvent) -> None:
        """Apply one event to the live table."""
        await self.apply_batch(connection, [event], self.table)
