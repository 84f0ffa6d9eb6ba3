"""Prometheus metrics: this process's instruments, in a registry of the app's own.

Two kinds, so that several processes on one database are counted right:

- per process (HTTP requests, Cal.com requests and retries, the outcomes this process recorded,
  recovery passes): plain counters and histograms; Prometheus scrapes each process as its own
  target and adds the `instance` label, so `sum without (instance)` is the service's total;
- global (outcomes, rejections, layer-4 refusals, events, projector lag, readiness): computed from
  the database at scrape time by `LedgerMetrics`, identical whichever process answers; aggregate
  with `max without (instance)`.

A registry per app (not prometheus-client's global one) lets tests run several apps side by side.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.process_collector import ProcessCollector

from service.ops.ledger_metrics import LedgerMetrics
from service.ops.version import package_version, python_version

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CALCOM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """The instruments of one app; `observe_*` are the hooks the other modules call."""

    def __init__(self, *, ledger_cache_seconds: float = 2.0) -> None:
        # prometheus-client adds a `<name>_created` series (the creation time) beside every
        # counter and histogram: as many series again, which no rule or panel reads. The switch is
        # the library's own, process-wide, read at scrape time; calling it again changes nothing.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        # The Prometheus convention for "what is running here": join on it to tell releases apart.
        Gauge(
            "booking_guard_build_info",
            "The booking-guard release and Python this process runs (always 1).",
            ["version", "python"],
            registry=r,
        ).labels(package_version(), python_version()).set(1)
        self.http_requests = Counter(
            "booking_guard_http_requests",
            "HTTP requests served by this process, by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "booking_guard_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.calcom_requests = Counter(
            "booking_guard_calcom_requests",
            "Requests this process sent to Cal.com, by route and status (no_answer: timeout or "
            "connection error).",
            ["method", "route", "status"],
            registry=r,
        )
        self.calcom_seconds = Histogram(
            "booking_guard_calcom_request_duration_seconds",
            "Time Cal.com took to answer one request (each retry counted on its own).",
            ["method", "route"],
            buckets=CALCOM_BUCKETS,
            registry=r,
        )
        self.calcom_retries = Counter(
            "booking_guard_calcom_retries",
            "Requests to Cal.com that were retries of an earlier one.",
            ["method", "route"],
            registry=r,
        )
        self.outcomes = Counter(
            "booking_guard_process_outcomes",
            "Attempt outcomes recorded by this process (the ledger totals are "
            "booking_guard_attempt_outcomes_total).",
            ["outcome", "guard", "reason"],
            registry=r,
        )
        self.calcom_auth_failures = Counter(
            "booking_guard_calcom_auth_failures",
            "Booking attempts this process recorded as failed because Cal.com refused the API "
            "key (401/403): CALCOM_API_KEY needs the operator.",
            registry=r,
        )
        self.recovered = Counter(
            "booking_guard_recovered_attempts",
            "Stale in-flight attempts this process's recovery loop drove to an outcome.",
            ["outcome"],
            registry=r,
        )
        self.parked = Counter(
            "booking_guard_attempts_parked",
            "Attempts this process's recovery loop parked after too many failed tries.",
            registry=r,
        )
        self.recovery_errors = Counter(
            "booking_guard_recovery_errors",
            "Recovery passes that ended in an error.",
            registry=r,
        )
        self.reaped_keys = Counter(
            "booking_guard_reaped_idempotency_keys",
            "Finished idempotency keys deleted after their retention period.",
            registry=r,
        )
        self.unguarded_bookings = Counter(
            "booking_guard_unguarded_bookings",
            "Cal.com bookings this process saw (webhook) carrying a call_id booking-guard never "
            "attempted; the global total is booking_guard_ledger_events_total"
            '{type="UnguardedBookingDetected"}.',
            registry=r,
        )
        self.orphans = Counter(
            "booking_guard_orphan_bookings",
            "Bookings of ours that no appointment held, handled by this process: cancelled in "
            "Cal.com, or alerted (BOOKING_GUARD_ORPHAN_POLICY=alert).",
            ["action"],
            registry=r,
        )
        self.drift = Counter(
            "booking_guard_reconcile_drift",
            "Differences between Cal.com and the ledger this process found: status drift "
            "(applied or, in a dry run, not) and bookings made around the guard.",
            ["kind"],
            registry=r,
        )
        for action in ("cancelled", "alerted"):
            self.orphans.labels(action)
        for kind in ("status_drift_applied", "status_drift", "unguarded"):
            self.drift.labels(kind)
        self.ledger = LedgerMetrics(cache_seconds=ledger_cache_seconds)
        # The series of each label set seen, so a request looks its series up once.
        self._http_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._outcome_series: dict[tuple[str, str | None, str | None], Counter] = {}
        r.register(self.ledger)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered HTTP request."""
        # Keyed by the label's method, not the request's: a parser that passes any token as a
        # method (aiohttp's pure-Python one) must not grow the cache one entry per token.
        known = method if method in _METHODS else "OTHER"
        series = self._http_series.get((known, route, status))
        if series is None:
            # `labels()` checks and joins its values under a lock on every call: each label set
            # is looked up once, then its two series are kept (routes are templates and methods
            # a fixed set, so this stays as small as the exposition itself).
            series = (
                self.http_requests.labels(known, route, str(status)),
                self.http_seconds.labels(known, route),
            )
            self._http_series[(known, route, status)] = series
        series[0].inc()
        series[1].observe(seconds)

    def observe_calcom(
        self, method: str, route: str, status: int | None, seconds: float, attempt: int, /
    ) -> None:
        """HttpCalcomClient's `on_request` hook: one request to Cal.com."""
        self.calcom_requests.labels(
            method, route, "no_answer" if status is None else str(status)
        ).inc()
        self.calcom_seconds.labels(method, route).observe(seconds)
        if attempt > 1:
            self.calcom_retries.labels(method, route).inc()

    def observe_outcome(self, status: str, guard: str | None, reason: str | None, /) -> None:
        """The booking workflow's observer: an outcome this process has just recorded."""
        series = self._outcome_series.get((status, guard, reason))
        if series is None:
            series = self._outcome_series[(status, guard, reason)] = self.outcomes.labels(
                status, guard or "", reason or ""
            )
        series.inc()
        if reason == "calcom_auth_failed":
            self.calcom_auth_failures.inc()

    def observe_orphan(self, action: str) -> None:
        """An orphan booking cancelled or alerted."""
        self.orphans.labels(action).inc()

    def observe_drift(self, kind: str) -> None:
        """A difference between Cal.com and the ledger, found by reconciliation."""
        self.drift.labels(kind).inc()

    def observe_unguarded_booking(self) -> None:
        """The Cal.com webhook found a booking made behind the guard's back."""
        self.unguarded_bookings.inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus's text format."""
        return generate_latest(self.registry)
