"""Metrics keep each label set's series after its first use: every observation still lands in the
series of its own method, route, status and outcome."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.ops.metrics import Metrics


def _samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = metrics.exposition().decode()
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def test_each_request_is_counted_under_its_own_labels() -> None:
    metrics = Metrics()
    for method, route, status in [
        ("POST", "/v1/booking-attempts", 201),
        ("POST", "/v1/booking-attempts", 201),
        ("POST", "/v1/booking-attempts", 409),
        ("GET", "/v1/booking-attempts", 201),
        ("BREW", "/v1/booking-attempts", 201),
        ("BREW", "/v1/booking-attempts", 201),
    ]:
        metrics.observe_http(method, route, status, 0.004)
    counts = _samples(metrics, "booking_guard_http_requests_total")
    path = ("route", "/v1/booking-attempts")
    assert counts == {
        (("method", "POST"), path, ("status", "201")): 2.0,
        (("method", "POST"), path, ("status", "409")): 1.0,
        (("method", "GET"), path, ("status", "201")): 1.0,
        (("method", "OTHER"), path, ("status", "201")): 2.0,
    }
    seconds = _samples(metrics, "booking_guard_http_request_duration_seconds_count")
    assert seconds[(("method", "POST"), path)] == 3.0


def test_each_outcome_is_counted_under_its_own_labels() -> None:
    metrics = Metrics()
    metrics.observe_outcome("confirmed", None, None)
    metrics.observe_outcome("confirmed", None, None)
    metrics.observe_outcome("rejected", "calcom", "slot_unavailable")
    metrics.observe_outcome("failed", None, "calcom_auth_failed")
    counts = _samples(metrics, "booking_guard_process_outcomes_total")
    assert counts == {
        (("guard", ""), ("outcome", "confirmed"), ("reason", "")): 2.0,
        (("guard", "calcom"), ("outcome", "rejected"), ("reason", "slot_unavailable")): 1.0,
        (("guard", ""), ("outcome", "failed"), ("reason", "calcom_auth_failed")): 1.0,
    }
    auth = _samples(metrics, "booking_guard_calcom_auth_failures_total")
    assert auth == {(): 1.0}


def test_unknown_methods_share_one_kept_series() -> None:
    """aiohttp's pure-Python parser passes any token as a method: a client sending a new one per
    request must not grow the kept series by one each (memory without a bound)."""
    metrics = Metrics()
    for n in range(500):
        metrics.observe_http(f"X{n}", "/v1/booking-attempts", 405, 0.001)
    assert len(metrics._http_series) == 1
    counts = _samples(metrics, "booking_guard_http_requests_total")
    assert counts == {
        (("method", "OTHER"), ("route", "/v1/booking-attempts"), ("status", "405")): 500.0
    }
