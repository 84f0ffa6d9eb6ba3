"""/health, /ready and /metrics as an operator and Prometheus see them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest

from projections import catalog, checkpoints
from service.calcom.simulator.server import CalcomSimulator
from service.ops.version import package_version, python_version
from tests.conftest import wait_until
from tests.e2e.conftest import CALL_687, CALL_688, MakeHarness, attempt_body
from tests.e2e.served import (
    Client,
    body,
    future_slot,
    served_app,
    simulator_on_loopback,
    value,
)

MakeApp = Callable[..., Awaitable[Client]]


@pytest.fixture
async def simulator_url() -> AsyncIterator[tuple[CalcomSimulator, str]]:
    async with simulator_on_loopback() as served:
        yield served


@pytest.fixture
async def make_app(
    db: asyncpg.Pool, database_url: str, simulator_url: tuple[CalcomSimulator, str]
) -> AsyncIterator[MakeApp]:
    async with AsyncExitStack() as stack:

        async def make(**settings: Any) -> Client:
            return await served_app(
                stack, database_url=database_url, calcom_base_url=simulator_url[1], **settings
            )

        yield make


async def metrics_text(client: Client) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return await response.text()


async def test_health_answers_without_asking_anything(make_app: MakeApp) -> None:
    client = await make_app()
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_ready_reports_every_check(make_app: MakeApp) -> None:
    client = await make_app()
    response = await client.get("/ready")
    payload = await response.json()
    assert response.status == 200, payload
    assert payload["status"] == "ready"
    assert payload["reasons"] == []
    checks = payload["checks"]
    assert checks["error"] is None
    assert checks["missing_tables"] == []
    assert {p["name"] for p in checks["projections"]} == {p.name for p in catalog.asynchronous()}
    assert checks["in_flight_attempts"] == 0


async def test_a_long_open_transaction_makes_the_service_not_ready(
    make_app: MakeApp, database_url: str
) -> None:
    client = await make_app(ready_max_transaction_seconds=0.2)
    conn = await asyncpg.connect(database_url)
    # The server may be shared with other test runs: look for this transaction by its pid.
    ours = f"(pid {conn.get_server_pid()}, "

    async def reasons() -> list[str]:
        response = await client.get("/ready")
        payload: dict[str, Any] = await response.json()
        assert (response.status == 503) == bool(payload["reasons"]), payload
        found: list[str] = payload["reasons"]
        return found

    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.fetchval("SELECT pg_current_xact_id()")  # holds back the horizon from now

        async def named() -> str | None:
            return next((r for r in await reasons() if ours in r), None)

        reason = await wait_until(named, timeout=5)
        assert reason is not None
        assert reason.startswith("a transaction has been open for ")
        assert "holds back every projector" in reason
        await transaction.rollback()
    finally:
        await conn.close()

    async def cleared() -> bool:
        return not any(ours in r for r in await reasons())

    await wait_until(cleared, timeout=5)


async def test_a_failed_projection_makes_the_service_not_ready(
    make_app: MakeApp, db: asyncpg.Pool
) -> None:
    client = await make_app()
    name = catalog.asynchronous()[0].name
    await checkpoints.ensure(db, name)
    await checkpoints.mark_failed(
        db, name, "event 7 (BookingRejected): the event has no field 'guard'"
    )
    response = await client.get("/ready")
    payload = await response.json()
    assert response.status == 503
    assert response.headers["Retry-After"]
    assert payload["reasons"] == [
        f"projection {name} has failed: event 7 (BookingRejected): the event has no field 'guard'"
    ]


async def test_metrics_count_outcomes_rejections_and_http_requests(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness()
    status, _ = await harness.book(attempt_body(CALL_687))
    assert status == 201
    status, rejected = await harness.book(attempt_body(CALL_688, name="Hans Schuster"))
    assert status == 409 and rejected["reason"] == "call_id_mismatch"

    text = await metrics_text(harness.client)
    assert value(text, "booking_guard_attempts_total") == 2
    assert value(text, "booking_guard_attempt_outcomes_total", outcome="confirmed") == 1
    assert value(text, "booking_guard_attempt_outcomes_total", outcome="rejected") == 1
    assert value(text, "booking_guard_attempt_outcomes_total", outcome="failed") == 0
    rejections = "booking_guard_guard_rejections_total"
    assert value(text, rejections, guard="call_identity", reason="call_id_mismatch") == 1
    assert value(text, rejections, guard="freshness", reason="stale_booking") == 0
    assert value(text, "booking_guard_unique_index_refusals_total") == 0
    assert value(text, "booking_guard_ledger_events_total", type="BookingConfirmed") == 1
    assert value(text, "booking_guard_ready") == 1
    route = "/v1/booking-attempts"
    http = "booking_guard_http_requests_total"
    assert value(text, http, method="POST", route=route, status="201") == 1
    assert value(text, http, method="POST", route=route, status="409") == 1
    histogram = "booking_guard_http_request_duration_seconds_count"
    assert value(text, histogram, method="POST", route=route) == 2
    process = "booking_guard_process_outcomes_total"
    assert value(text, process, outcome="confirmed", guard="", reason="") == 1
    assert (
        value(text, process, outcome="rejected", guard="call_identity", reason="call_id_mismatch")
        == 1
    )


async def test_a_layer_4_refusal_has_its_own_counter(make_harness: MakeHarness) -> None:
    # Without layers 1-3, Cal.com's second answer (call 687's booking) reaches the unique index.
    harness = await make_harness(guards_enabled=False)
    assert (await harness.book(attempt_body(CALL_687)))[0] == 201
    status, refused = await harness.book(attempt_body(CALL_688, name="Hans Schuster"))
    assert status == 409 and refused["guard"] == "database_constraint"

    text = await metrics_text(harness.client)
    assert value(text, "booking_guard_unique_index_refusals_total") == 1
    assert (
        value(
            text,
            "booking_guard_guard_rejections_total",
            guard="database_constraint",
            reason="duplicate_booking",
        )
        == 1
    )


async def test_every_process_reports_the_same_ledger_totals(make_app: MakeApp) -> None:
    booking_process, other_process = await make_app(), await make_app()
    slot = future_slot()
    for n in range(3):
        response = await booking_process.post(
            "/v1/booking-attempts", json=body(f"call_{n}", slot, email=f"caller{n}@example.com")
        )
        assert response.status == (201 if n == 0 else 409)

    texts = [await metrics_text(c) for c in (booking_process, other_process)]
    for text in texts:
        assert value(text, "booking_guard_attempt_outcomes_total", outcome="confirmed") == 1
        assert value(text, "booking_guard_attempt_outcomes_total", outcome="rejected") == 2
        rejections = "booking_guard_guard_rejections_total"
        assert value(text, rejections, guard="calcom", reason="slot_unavailable") == 2
    # Per-process series count only what their own process served.
    http = "booking_guard_http_requests_total"
    route = "/v1/booking-attempts"
    assert value(texts[0], http, method="POST", route=route, status="409") == 2
    assert value(texts[1], http, method="POST", route=route, status="409") is None


async def test_calcom_requests_retries_and_latency_are_measured(
    make_app: MakeApp, simulator_url: tuple[CalcomSimulator, str]
) -> None:
    simulator, _ = simulator_url
    client = await make_app()
    simulator.add_faults("500@create")
    response = await client.post(
        "/v1/booking-attempts", json=body("call_retry", future_slot(), email="a@example.com")
    )
    assert response.status == 201, await response.text()

    text = await metrics_text(client)
    requests = "booking_guard_calcom_requests_total"
    route = "/v2/bookings"
    assert value(text, requests, method="POST", route=route, status="500") == 1
    assert value(text, requests, method="POST", route=route, status="201") == 1
    assert value(text, "booking_guard_calcom_retries_total", method="POST", route=route) == 1
    latency = "booking_guard_calcom_request_duration_seconds_count"
    assert value(text, latency, method="POST", route=route) == 2


async def test_unmatched_paths_share_one_label(make_app: MakeApp) -> None:
    client = await make_app()
    for n in range(3):
        assert (await client.get(f"/no/such/path/{n}")).status == 404
    text = await metrics_text(client)
    http = "booking_guard_http_requests_total"
    assert value(text, http, method="GET", route="unmatched", status="404") == 3


async def test_metrics_name_the_release_and_carry_no_created_series(make_app: MakeApp) -> None:
    client = await make_app()
    # A counter with a sample: prometheus-client would add its _created beside it.
    assert (await client.get("/health")).status == 200
    text = await metrics_text(client)
    assert (
        value(
            text, "booking_guard_build_info", version=package_version(), python=(python_version())
        )
        == 1
    )
    assert "_created" not in text
