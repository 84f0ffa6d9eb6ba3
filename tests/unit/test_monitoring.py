"""The stack's monitoring: Prometheus scrapes both processes and loads the alert rules, Grafana
shows every series aggregated the way README's "Health, readiness, metrics" says."""

from __future__ import annotations

import ast
import json
import re
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from tests.unit.stack_files import ROOT, compose, image_services

# README "Health, readiness, metrics", its table of series, without the _total/_bucket suffixes.
# Global: read from PostgreSQL at scrape time, the same from every process: `max by (job)`.
GLOBAL_SERIES = {
    *("booking_guard_attempts", "booking_guard_attempt_outcomes"),
    *("booking_guard_guard_rejections", "booking_guard_unique_index_refusals"),
    *("booking_guard_booking_failures", "booking_guard_ledger_events"),
    *("booking_guard_projection_lag_events", "booking_guard_projection_lag_seconds"),
    *("booking_guard_projection_position", "booking_guard_projection_failed"),
    *("booking_guard_oldest_transaction_seconds", "booking_guard_in_flight_attempts"),
    *("booking_guard_stale_in_flight_attempts", "booking_guard_ready"),
    *("booking_guard_database_up", "booking_guard_schema_applied"),
    "booking_guard_parked_attempts",
}
# This process's own counters and histograms (Prometheus adds `instance`): `sum by (job)`.
PER_PROCESS_SERIES = {
    *("booking_guard_http_requests", "booking_guard_http_request_duration_seconds"),
    *("booking_guard_calcom_requests", "booking_guard_calcom_request_duration_seconds"),
    *("booking_guard_calcom_retries", "booking_guard_process_outcomes"),
    *("booking_guard_recovered_attempts", "booking_guard_recovery_errors"),
    *("booking_guard_reaped_idempotency_keys", "booking_guard_unguarded_bookings"),
    *("booking_guard_orphan_bookings", "booking_guard_reconcile_drift"),
    "booking_guard_attempts_parked",
    "booking_guard_calcom_auth_failures",
    "booking_guard_build_info",
}
# What the dashboard must show at least (issue 15).
SHOWN = {
    *("booking_guard_attempts", "booking_guard_attempt_outcomes", "booking_guard_ready"),
    *("booking_guard_guard_rejections", "booking_guard_unique_index_refusals"),
    *("booking_guard_projection_lag_seconds", "booking_guard_oldest_transaction_seconds"),
    *("booking_guard_in_flight_attempts", "booking_guard_database_up"),
    *("booking_guard_http_requests", "booking_guard_http_request_duration_seconds"),
    *("booking_guard_calcom_requests", "booking_guard_calcom_retries"),
    "booking_guard_recovered_attempts",
}
DASHBOARD = ROOT / "ops" / "grafana" / "dashboards" / "booking-guard.json"
PROVISIONING = ROOT / "ops" / "grafana" / "provisioning"
METRIC_NAME = r"booking_guard_\w+"
_SUFFIX = re.compile(r"_(total|bucket|count|sum|created)$")
_AGGREGATION = re.compile(r"\b(sum|max|min|avg|count)\s+by\s*\(([^)]*)\)\s*\(")


def _declared_series() -> set[str]:
    """Every metric name the service declares: a literal name followed by its help text."""
    names = set()
    for path in (ROOT / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and len(node.args) >= 2):
                continue
            name = node.args[0]
            if isinstance(name, ast.Constant) and re.fullmatch(METRIC_NAME, str(name.value)):
                names.add(str(name.value))
    return names


def _expressions() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def _innermost_aggregation(expr: str, position: int) -> tuple[str, set[str]] | None:
    """The operator and `by` labels of the innermost aggregation around `position`."""
    enclosing: list[tuple[int, str, set[str]]] = []
    for match in _AGGREGATION.finditer(expr):
        start, depth = match.end() - 1, 0
        for end in range(start, len(expr)):
            depth += {"(": 1, ")": -1}.get(expr[end], 0)
            if depth == 0:
                break
        if start < position < end:
            labels = {label.strip() for label in match.group(2).split(",")}
            enclosing.append((end - start, match.group(1), labels))
    return min(enclosing, key=lambda e: e[0])[1:] if enclosing else None


def _mount_target(service: str, source: str) -> PurePosixPath:
    for volume in compose()["services"][service]["volumes"]:
        host, _, rest = volume.partition(":")
        if host == source:
            return PurePosixPath(rest.partition(":")[0])
    raise AssertionError(f"compose.yaml does not mount {source} into {service}")


def test_every_series_the_service_declares_is_classified() -> None:
    assert not GLOBAL_SERIES & PER_PROCESS_SERIES
    assert _declared_series() == GLOBAL_SERIES | PER_PROCESS_SERIES


@pytest.mark.parametrize(("title", "expr"), _expressions())
def test_the_dashboard_takes_global_series_once_and_sums_per_process_ones(
    title: str, expr: str
) -> None:
    for match in re.finditer(METRIC_NAME, expr):
        series = _SUFFIX.sub("", match.group())
        assert series in GLOBAL_SERIES | PER_PROCESS_SERIES, f"{title}: unknown {series}"
        expected = "max" if series in GLOBAL_SERIES else "sum"
        aggregation = _innermost_aggregation(expr, match.start())
        assert aggregation is not None, f"{title}: {series} is not aggregated"
        operator, labels = aggregation
        assert (operator, "job" in labels) == (expected, True), f"{title}: {expr}"


def test_the_dashboard_shows_the_series_operators_need() -> None:
    shown = {
        _SUFFIX.sub("", name)
        for _, expr in _expressions()
        for name in re.findall(METRIC_NAME, expr)
    }
    assert shown >= SHOWN


def test_every_panel_queries_the_provisioned_prometheus() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose()["services"]
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["targets"], panel["title"]
        for query in [panel, *panel["targets"]]:
            assert query["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}


def test_grafana_loads_the_shipped_dashboard() -> None:
    assert _mount_target("grafana", "./ops/grafana/provisioning") == PurePosixPath(
        "/etc/grafana/provisioning"
    )
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    target = _mount_target("grafana", "./ops/grafana/dashboards")
    assert PurePosixPath(provider["options"]["path"]) == target


def test_prometheus_scrapes_each_process_and_loads_the_alert_rules() -> None:
    config: dict[str, Any] = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "booking-guard"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (static,) = job["static_configs"]
    serving = [n for n, s in image_services(compose()).items() if s["command"] == ["serve"]]
    assert sorted(static["targets"]) == sorted(f"{name}:8080" for name in serving)
    config_file = _mount_target("prometheus", "./ops/prometheus/prometheus.yml")
    assert f"--config.file={config_file}" in compose()["services"]["prometheus"]["command"]
    # Prometheus resolves rule_files relative to its configuration file.
    rules = [config_file.parent / path for path in config["rule_files"]]
    assert rules == [_mount_target("prometheus", "./ops/prometheus/alerts.yml")]
