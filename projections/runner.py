"""The projector runner: keeps one asynchronous projection up to date with the log.

One runner per projection is active across every process sharing the database: it holds a
session advisory lock on a connection of its own, which also LISTENs on `bg_events`. The others
stand by and try the lock every `lock_retry` seconds, so when the holder dies (its connection
closes, the lock goes with it) another process takes over within seconds.

The active runner catches up in batches and then waits for a notification or `poll_interval`,
whichever comes first: a lost notification only delays. Each batch runs in one transaction that
row-locks the checkpoint, reads behind the transaction horizon, applies the events and advances
the checkpoint. A handler error rolls that back, marks the projection failed and stops it (no
retry loop, no skip) until `booking-guard projections resume` or a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from events import reads
from events.models import RecordedEvent
from events.store import START, Connection, Cursor, EventStore
from projections import checkpoints
from projections.errors import RETRY_LATER, ProjectionFailed
from projections.projection import Projection

__all__ = ["ProjectionFailed", "ProjectionLag", "ProjectionRunner"]

log = logging.getLogger(__name__)

CHANNEL = "bg_events"
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('bg-projection:' || $1, 0))"
_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended('bg-projection:' || $1, 0))"
RECHECK_AFTER_NOTIFY = 0.05


@dataclass(slots=True)
class _Batch:
    """What one batch claimed, read and was applying, for the error message if it fails."""

    claimed: checkpoints.Checkpoint = checkpoints.NOT_STARTED
    events: list[RecordedEvent] = field(default_factory=list)
    current: RecordedEvent | None = None

    @property
    def error(self) -> str | None:
        return self.claimed.error


class _LockLost(Exception):
    """The connection holding the advisory lock closed: someone else may be running now."""


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    """How far one projection trails the log, for /ready and /metrics."""

    name: str
    state: str
    active: bool
    checkpoint: Cursor
    events_behind: int
    seconds_behind: float
    error: str | None


class ProjectionRunner:
    """Runs one projection: `start()`, `stop()`, `lag()`, and `wait_for()` for tests."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        projection: Projection,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        lock_retry: float = 1.0,
        listen: bool = True,
    ) -> None:
        if batch_size <= 0 or poll_interval <= 0 or lock_retry <= 0:
            raise ValueError("batch_size, poll_interval and lock_retry must be positive")
        self.projection = projection
        self._pool = pool
        self._store = store
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lock_retry = lock_retry
        self._listen = listen
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._recheck: float | None = None
        self._progress = asyncio.Condition()
        self._active = False
        self._checkpoint = START
        self._caught_up = START  # every handled event up to here is applied
        self._waiting = 0  # callers of wait_for
        self._state = checkpoints.RUNNING
        self._error: str | None = None

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def active(self) -> bool:
        """True while this runner holds the projection's lock and is the one applying events."""
        return self._active

    @property
    def checkpoint(self) -> Cursor:
        """The last checkpoint this runner committed."""
        return self._checkpoint

    def start(self) -> None:
        """Start running in the background (standing by while another process is active)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"projection-{self.name}")

    async def stop(self) -> None:
        """Stop, release the lock and wait until the task has ended."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def lag(self) -> ProjectionLag:
        """Events not yet applied and the age of the oldest, from the stored checkpoint."""
        stored = await checkpoints.read(self._pool, self.name)
        behind = await reads.backlog(self._pool, after=stored.cursor, types=self.projection.types)
        return ProjectionLag(
            name=self.name,
            state=stored.state,
            active=self._active,
            checkpoint=stored.cursor,
            events_behind=behind.events,
            seconds_behind=behind.seconds,
            error=stored.error,
        )

    async def wait_for(self, target: Cursor | int, *, timeout: float = 5.0) -> None:
        """Wait until every handled event up to `target` (a cursor or a position) is applied.

        Raises ProjectionFailed at once if the projection fails, TimeoutError after `timeout`.
        """
        async with asyncio.timeout(timeout):
            if isinstance(target, int):
                found = await reads.cursor_at(self._pool, target)
                if found is None:
                    raise LookupError(f"no committed event at position {target}")
                target = found
            if self._state == checkpoints.FAILED:
                # Resumed by someone else since the runner last looked: take their word for it.
                stored = await checkpoints.read(self._pool, self.name)
                self._state, self._error = stored.state, stored.error
            goal = target
            self._waiting += 1
            self._wake.set()  # the next step reads the head for this waiter
            try:
                async with self._progress:
                    await self._progress.wait_for(lambda: self._reached(goal))
            finally:
                self._waiting -= 1

    def _reached(self, target: Cursor) -> bool:
        if self._state == checkpoints.FAILED:
            raise ProjectionFailed(self.name, self._error)
        return self._checkpoint >= target or self._caught_up >= target

    async def _run(self) -> None:
        troubled = False
        while True:
            try:
                async with self._pool.acquire() as conn:
                    if await conn.fetchval(_TRY_LOCK, self.name):
                        troubled = False
                        await self._lead(conn)
            except RETRY_LATER as e:
                if not troubled:
                    log.warning("projection %s paused, database unavailable: %s", self.name, e)
                troubled = True
            except _LockLost:
                log.warning("projection %s lost its lock connection; standing by", self.name)
            await asyncio.sleep(self._lock_retry)

    async def _lead(self, conn: Connection) -> None:
        log.info("projection %s: this process is the active runner", self.name)
        self._active = True
        conn.add_termination_listener(self._on_terminated)
        try:
            if self._listen:
                await conn.add_listener(CHANNEL, self._on_notify)
            await checkpoints.ensure(self._pool, self.name)
            while True:
                if conn.is_closed():
                    raise _LockLost
                self._wake.clear()
                if await self._step():
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._next_wait()):
                        await self._wake.wait()
        finally:
            self._active = False
            conn.remove_termination_listener(self._on_terminated)
            if not conn.is_closed():
                with contextlib.suppress(*RETRY_LATER):
                    await conn.remove_listener(CHANNEL, self._on_notify)
                    await conn.fetchval(_UNLOCK, self.name)

    async def _step(self) -> bool:
        """Apply one batch; True when a full batch was read and more may be waiting."""
        if self._state == checkpoints.FAILED:
            stored = await checkpoints.read(self._pool, self.name)
            if stored.state == checkpoints.FAILED:
                return False
            log.info("projection %s resumed at %s", self.name, stored.cursor)
        # The head tells a waiter how far this projection has seen the log (events of other
        # types included); nothing else reads `_caught_up`, so it is read only while one waits.
        head = await self._store.head() if self._waiting else None
        if self._state != checkpoints.FAILED and not await self._anything_to_apply():
            # What a batch would find, without its transaction: most wakes (a confirmation's
            # NOTIFY and the rechecks after it) bring nothing of this projection's types, and a
            # batch that reads nothing cost BEGIN, the checkpoint's row lock and COMMIT.
            if head is not None:
                self._caught_up = max(self._caught_up, head)
                await self._set_state(checkpoints.RUNNING, None)
            return False
        batch = _Batch()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await self._apply_next(conn, batch)
        except RETRY_LATER:
            raise
        except Exception as e:  # noqa: BLE001 - _fail logs it with its traceback
            # A projection's handler may raise anything; whatever it is stops the projection.
            await self._fail(e, batch)
            return False
        if batch.claimed.state == checkpoints.FAILED:
            if self._state != checkpoints.FAILED:
                log.error("projection %s is failed, not running it: %s", self.name, batch.error)
            await self._set_state(checkpoints.FAILED, batch.claimed.error)
            return False
        self._checkpoint = _cursor(batch.events[-1]) if batch.events else batch.claimed.cursor
        if head is not None and len(batch.events) < self._batch_size:
            self._caught_up = max(self._caught_up, head)
        await self._set_state(checkpoints.RUNNING, None)
        return len(batch.events) == self._batch_size

    async def _anything_to_apply(self) -> bool:
        """Whether a batch would find work: an event of this projection's types past its
        stored checkpoint behind the horizon, or a failure stored there (by another process's
        runner), which the batch's claim reports to waiters. Read after the head, so every
        event up to it is in view. The stored checkpoint, not this runner's memory of it: a
        rewound checkpoint (`checkpoints.reset`) is applied again. Nothing is decoded here, so
        an event that does not fit its model fails the projection in the batch, as before."""
        stored = await checkpoints.read(self._pool, self.name)
        if stored.state == checkpoints.FAILED:
            return True
        return await reads.any_after(self._pool, after=stored.cursor, types=self.projection.types)

    async def _apply_next(self, conn: Connection, batch: _Batch) -> None:
        batch.claimed = await checkpoints.claim(conn, self.name)
        if batch.claimed.state == checkpoints.FAILED:
            return
        batch.events = await self._store.read_all(
            after=batch.claimed.cursor,
            limit=self._batch_size,
            types=self.projection.types,
            connection=conn,
        )
        for event in batch.events:
            batch.current = event
            await self.projection.apply(conn, event)
        if batch.events:
            await checkpoints.advance(conn, self.name, _cursor(batch.events[-1]))

    async def _fail(self, error: Exception, batch: _Batch) -> None:
        where = _where(batch.current, batch.claimed.cursor)
        # The text reaches /ready's 503 body and `projections status`: words, not the class
        # name; the traceback goes to the log below.
        text = f"{where}: {_handler_failure(error)}"
        log.error(
            "projection %s failed at %s and has stopped; fix the cause, then run"
            " `booking-guard projections resume %s` or `booking-guard replay --projection %s`",
            self.name,
            where,
            self.name,
            self.name,
            exc_info=error,
        )
        await checkpoints.mark_failed(self._pool, self.name, text)
        await self._set_state(checkpoints.FAILED, text)

    async def _set_state(self, state: str, error: str | None) -> None:
        self._state, self._error = state, error
        async with self._progress:
            self._progress.notify_all()

    def _next_wait(self) -> float:
        # A notified event may still be behind the horizon: an older transaction anywhere on
        # the server (not only an append, which would notify in turn) holds it back. Look again
        # soon, backing off to the poll interval, rather than a whole interval later.
        wait = self._poll_interval
        if self._recheck is not None:
            wait = min(self._recheck, wait)
            doubled = self._recheck * 2
            self._recheck = doubled if doubled < self._poll_interval else None
        return wait

    def _on_notify(self, *_: Any) -> None:
        self._recheck = RECHECK_AFTER_NOTIFY
        self._wake.set()

    def _on_terminated(self, *_: Any) -> None:
        self._wake.set()


def _cursor(event: RecordedEvent) -> Cursor:
    return Cursor(event.transaction_id, event.position)


def _where(event: RecordedEvent | None, after: Cursor) -> str:
    if event is None:
        return f"reading after {after}"
    return f"event {event.position} ({event.type} in stream {event.stream_id})"


def _handler_failure(error: Exception) -> str:
    """A projection handler's error in words."""
    if isinstance(error, KeyError):
        return f"the event has no field {error}"
    return f"the handler failed: {error}" if str(error) else "the handler failed"
