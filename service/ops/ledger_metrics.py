"""Business totals read from the ledger at scrape time: every process reports the same numbers.

Booking outcomes, guard rejections, layer-4 refusals, projector lag: with several processes on one
database, a per-process counter would only know what its own process did, and lose it on restart.
These come from PostgreSQL instead, so whichever process is scraped, the answer is the global
truth (aggregate them with `max without (instance)`, never `sum`).

The event counts come from `LedgerCounts` (exact at each look, incremental by transaction
horizon, service/ops/ledger_counts.py). They are exported only once the whole log has been
counted, so a counter never appears with a partial value that Prometheus would take for a burst;
every known guard rejection and event type is exported from zero, so the first one ever is an
increase Prometheus can see.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from datetime import datetime

import asyncpg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from events.errors import DATABASE_ERRORS
from events.models import registered_types
from service.ops.database_status import (
    DatabaseStatus,
    ReadyLimits,
    database_status,
    problems,
)
from service.ops.ledger_counts import LedgerCounts, Tally

log = logging.getLogger(__name__)

OUTCOME_TYPES = {
    "BookingConfirmed": "confirmed",
    "BookingRejected": "rejected",
    "BookingFailed": "failed",
}
LAYER_4_GUARD = "database_constraint"
# Exported at zero from the start, so that the first one ever is an increase Prometheus sees.
KNOWN_REJECTIONS = (
    ("freshness", "stale_booking"),
    ("call_identity", "call_id_mismatch"),
    ("existing_appointment", "duplicate_booking"),
    ("existing_appointment", "already_confirmed_for_call"),
    (LAYER_4_GUARD, "duplicate_booking"),
    ("slot_match", "slot_mismatch"),
    ("slot_match", "attendee_mismatch"),
    ("calcom", "slot_unavailable"),
)
KNOWN_FAILURES = (
    "calcom_timeout",
    "calcom_unavailable",
    "calcom_unreachable",
    "calcom_rate_limited",
    "calcom_rejected_request",
    "calcom_auth_failed",
    "unsupported_event_type",
)


class LedgerMetrics(Collector):
    """A prometheus-client collector over the ledger; `refresh()` before each exposition."""

    def __init__(self, *, cache_seconds: float = 2.0, count_timeout: float = 30.0) -> None:
        self._cache_seconds = cache_seconds
        self._count_timeout = count_timeout
        self._lock = asyncio.Lock()
        self._refreshed_at = float("-inf")
        self._counts = LedgerCounts()
        self._status = DatabaseStatus(error="not asked yet")
        self._problems: list[str] = ["not asked yet"]

    async def refresh(
        self, pool: asyncpg.Pool, *, stale_before: datetime, limits: ReadyLimits
    ) -> None:
        """Ask the database again unless the last answer is younger than the cache period."""
        async with self._lock:
            if time.monotonic() - self._refreshed_at < self._cache_seconds:
                return
            status = await database_status(pool, stale_before=stale_before)
            if status.reachable:
                try:
                    async with asyncio.timeout(self._count_timeout):
                        await self._counts.refresh(pool)
                except DATABASE_ERRORS as e:
                    log.warning("could not count the ledger's events for /metrics: %s", e)
            self._status, self._problems = status, problems(status, limits)
            self._refreshed_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        """The families from the last refresh."""
        yield from self._status_families()
        tally = self._counts.total()
        if tally is not None:
            yield from self._ledger_families(tally)

    def _ledger_families(self, tally: Tally) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "booking_guard_ledger_events", "Events in the ledger, by type.", labels=["type"]
        )
        # Every known type from the start (at 0), so the first of a kind is a visible increase.
        for event_type in sorted(set(registered_types()) | set(tally.events)):
            events.add_metric([event_type], tally.events[event_type])
        yield events
        yield CounterMetricFamily(
            "booking_guard_attempts",
            "Booking attempts recorded (BookingRequested), all processes.",
            value=tally.events["BookingRequested"],
        )
        outcomes = CounterMetricFamily(
            "booking_guard_attempt_outcomes",
            "Booking attempts by outcome event, all processes.",
            labels=["outcome"],
        )
        for event_type, outcome in OUTCOME_TYPES.items():
            outcomes.add_metric([outcome], tally.events[event_type])
        yield outcomes
        rejections = CounterMetricFamily(
            "booking_guard_guard_rejections",
            "BookingRejected events by guard and reason code, all processes.",
            labels=["guard", "reason"],
        )
        rejected = dict.fromkeys(KNOWN_REJECTIONS, 0) | dict(tally.rejections)
        for (guard, reason), n in sorted(rejected.items()):
            rejections.add_metric([guard, reason], n)
        yield rejections
        yield CounterMetricFamily(
            "booking_guard_unique_index_refusals",
            "Layer 4: confirmations the appointments unique index refused. Any is a bug: alert.",
            value=sum(n for (guard, _), n in rejected.items() if guard == LAYER_4_GUARD),
        )
        failures = CounterMetricFamily(
            "booking_guard_booking_failures",
            "BookingFailed events by reason, all processes.",
            labels=["reason"],
        )
        failed = dict.fromkeys(KNOWN_FAILURES, 0) | dict(tally.failures)
        for reason, n in sorted(failed.items()):
            failures.add_metric([reason], n)
        yield failures

    def _status_families(self) -> Iterator[Metric]:
        status = self._status
        yield _gauge("booking_guard_database_up", "1 when PostgreSQL answered.", status.reachable)
        yield _gauge(
            "booking_guard_ready",
            "1 when /ready would answer 200.",
            status.reachable and not self._problems,
        )
        if not status.reachable:
            return
        yield _gauge(
            "booking_guard_schema_applied", "1 when every table exists.", not status.missing_tables
        )
        labels = ["projection"]
        lag_events = GaugeMetricFamily(
            "booking_guard_projection_lag_events", "Events not yet applied.", labels=labels
        )
        lag_seconds = GaugeMetricFamily(
            "booking_guard_projection_lag_seconds",
            "Age of the oldest event not yet applied (0 when caught up).",
            labels=labels,
        )
        position = GaugeMetricFamily(
            "booking_guard_projection_position", "Position of the checkpoint.", labels=labels
        )
        failed = GaugeMetricFamily(
            "booking_guard_projection_failed", "1 when the projection has stopped.", labels=labels
        )
        for p in status.projections:
            lag_events.add_metric([p.name], p.events_behind)
            lag_seconds.add_metric([p.name], p.seconds_behind)
            position.add_metric([p.name], p.position)
            failed.add_metric([p.name], 1 if p.state == "failed" else 0)
        yield from (lag_events, lag_seconds, position, failed)
        oldest = status.oldest_transaction
        yield _gauge(
            "booking_guard_oldest_transaction_seconds",
            "Age of the oldest transaction holding a transaction id (it holds back projectors).",
            0.0 if oldest is None else oldest.seconds,
        )
        yield _gauge(
            "booking_guard_in_flight_attempts",
            "Idempotency keys whose attempt has no outcome yet.",
            status.in_flight_attempts,
        )
        yield _gauge(
            "booking_guard_stale_in_flight_attempts",
            "In-flight attempts older than the recovery grace period: recovery should take them.",
            status.stale_in_flight_attempts,
        )
        yield _gauge(
            "booking_guard_parked_attempts",
            "Attempts recovery gave up on; `booking-guard attempts resume <id>` once fixed.",
            status.parked_attempts,
        )


def _gauge(name: str, documentation: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=float(value))
