"""The recovery loop: every few seconds, drive attempts whose process died to an outcome.

Every process runs one. `BookingWorkflow.recover_stale` takes stale in-flight keys under
`FOR UPDATE SKIP LOCKED`, so however many processes look at once, each attempt is taken by one;
it reconciles with Cal.com before re-sending, so the booking the dead process made is found and
judged as this attempt's own. The loop also deletes finished idempotency keys past their
retention (DESIGN.md §9: kept at least 24 h, reaped after 72 h; the log keeps the history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from events.errors import TRANSIENT_DATABASE_ERRORS
from events.store import EventStore
from service.booking import idempotency, parking
from service.booking.clock import Clock
from service.booking.reconciler import Reconciler
from service.booking.workflow import BookingWorkflow
from service.calcom.port import CalcomError
from service.ops.logs import log_scope
from service.ops.metrics import Metrics

log = logging.getLogger(__name__)

KEY_RETENTION = timedelta(hours=72)
REAP_EVERY_SECONDS = 600.0
BATCH_SIZE = 10
MAX_BATCHES_PER_PASS = 20
STOP_GRACE_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Parking:
    """When recovery gives up on an attempt: after `max_tries` take-overs past `grace`."""

    store: EventStore
    max_tries: int
    grace: timedelta


class RecoveryLoop:
    """Runs `recover_stale` every `interval` seconds and reaps old keys now and then."""

    def __init__(
        self,
        workflow: BookingWorkflow,
        pool: asyncpg.Pool,
        clock: Clock,
        *,
        interval: float,
        metrics: Metrics | None = None,
        batch_size: int = BATCH_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
        reconciler: Reconciler | None = None,
        parking: Parking | None = None,
        reconcile_every: float = 0.0,
    ) -> None:
        if interval <= 0 or batch_size <= 0:
            raise ValueError(f"interval and batch_size must be positive: {interval}, {batch_size}")
        self._workflow = workflow
        # Orphans: keys whose failed attempts may have left a booking, due after their grace.
        self._reconciler = reconciler
        # How often a window of Cal.com is compared with the ledger (0: never, in this loop).
        self._reconcile_every = reconcile_every
        self._window_at = float("-inf")
        self._pool = pool
        self._clock = clock
        self._interval = interval
        self._metrics = metrics
        self._batch_size = batch_size
        self._monotonic = monotonic
        self._parking = parking
        self._reaped_at = float("-inf")
        self._stop = asyncio.Event()
        self._troubled = False

    async def run_once(self) -> int:
        """One pass: park the hopeless, recover every stale attempt, reap if due; the number
        recovered."""
        await self._park()
        recovered = 0
        for _ in range(MAX_BATCHES_PER_PASS):
            # The workflow binds each attempt's ids to its log lines; they end with the batch.
            with log_scope():
                outcomes = await self._workflow.recover_stale(limit=self._batch_size)
            for outcome in outcomes:
                if self._metrics is not None:
                    self._metrics.recovered.labels(outcome.status).inc()
            recovered += len(outcomes)
            if len(outcomes) < self._batch_size:
                break
        if recovered:
            log.info("recovered %d stale attempts", recovered)
        if self._reconciler is not None:
            with log_scope():
                settled = await self._reconciler.run_queue(limit=self._batch_size)
            if settled:
                log.info("settled %d orphan bookings", len(settled))
        due = self._monotonic() - self._window_at >= self._reconcile_every
        if self._reconciler is not None and self._reconcile_every > 0 and due:
            self._window_at = self._monotonic()
            try:
                with log_scope():
                    findings = await self._reconciler.reconcile_window()
            except CalcomError as e:
                # Cal.com away or refusing: the next pass tries again; nothing was settled.
                log.warning("reconciliation skipped, Cal.com did not answer: %s", e)
                findings = None
            differing = [f for f in findings or [] if f.kind not in ("in_sync", "in_flight")]
            if differing:
                log.warning("reconciliation settled %d differences with Cal.com", len(differing))
        if self._monotonic() - self._reaped_at >= REAP_EVERY_SECONDS:
            await self._reap()
        return recovered

    async def _park(self) -> None:
        if self._parking is None:
            return
        now = self._clock.now()
        parked = await parking.park_exhausted(
            self._pool,
            self._parking.store,
            max_tries=self._parking.max_tries,
            stale_before=now - self._parking.grace,
            now=now,
        )
        for event in parked:
            log.error(
                "parked attempt %s of call %s after %d recovery tries; resume it with "
                "`booking-guard attempts resume %s` once the cause is fixed",
                event.attempt_id,
                event.call_id,
                event.recovery_tries,
                event.attempt_id,
            )
            if self._metrics is not None:
                self._metrics.parked.inc()

    async def _reap(self) -> None:
        async with self._pool.acquire() as conn:
            reaped = await idempotency.reap(conn, finished_before=self._clock.now() - KEY_RETENTION)
        self._reaped_at = self._monotonic()
        if reaped:
            log.info("reaped %d finished idempotency keys older than %s", reaped, KEY_RETENTION)
        if self._metrics is not None:
            self._metrics.reaped_keys.inc(reaped)

    async def run(self) -> None:
        """Pass after pass until `stop()`; a failing pass is logged and the next one tried."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stop.wait()
            if self._stop.is_set():
                return
            try:
                await self.run_once()
                self._troubled = False
            except TRANSIENT_DATABASE_ERRORS as e:
                # The database being away: the next pass will do the same work.
                if not self._troubled:
                    log.warning("recovery paused, database unavailable: %s", e)
                self._troubled = True
                self._count_error()
            except Exception:  # the loop's guard: logged with its traceback, then the next pass
                # A bug in one pass must not end recovery for the life of the process.
                log.exception("recovery pass failed; the next one runs in %s s", self._interval)
                self._count_error()

    def stop(self) -> None:
        """Let the current pass finish and end the loop."""
        self._stop.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the loop as a task for the life of the block; on exit, let a pass finish."""
        task = asyncio.create_task(self.run(), name="recovery")
        try:
            yield
        finally:
            self.stop()
            # A pass in progress may finish (its attempt would otherwise wait out the grace
            # period again); one that takes too long is cancelled and left to the next pass of
            # any process.
            done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
            if not done:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _count_error(self) -> None:
        if self._metrics is not None:
            self._metrics.recovery_errors.inc()
