"""schemathesis' stateful run over the OpenAPI document's links: create an attempt, then read
its outcome (`GET /v1/booking-attempts/{attempt_id}`) and its call's audit timeline
(`GET /v1/calls/{call_id}/events`), in sequences Hypothesis draws, under the same invariants as
every other property (tests/e2e/properties/driver.py) and the document's own conformance checks.
"""

from __future__ import annotations

import asyncio
import zlib
from datetime import timedelta
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from events.migrate import MIGRATIONS_TABLE
from tests.e2e.conftest import INCIDENT_MORNING, PLAIN, MakeHarness
from tests.e2e.properties.driver import EXAMPLES, TOKEN, Answer, Driver, property_settings

pytestmark = pytest.mark.slow

Case = schemathesis.Case[Any]
LINKED = ["createBookingAttempt", "getBookingAttempt", "callEvents"]
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    # A created attempt can be read back at once; schemathesis follows the links to see it.
    ensure_resource_availability,
    use_after_free,
]
# Sequences are several requests each: fewer of them fill the same time.
STEPS = 5


async def test_create_read_audit_sequences_keep_the_invariants(make_harness: MakeHarness) -> None:
    # A generous Cal.com timeout: a replayed sequence must meet the answers the first run met,
    # and a 504 under a loaded machine would follow other links than the 201 it replays.
    harness = await make_harness(
        api_tokens=[TOKEN], fallback_email="termin@example.com", total_timeout=10.0
    )
    d = Driver(harness, asyncio.get_running_loop())
    base_url = str(harness.client.make_url("")).rstrip("/")
    # What failed first: a sequence whose replay meets other answers (a server is state) ends
    # in Hypothesis' FlakyStrategyDefinition, which would hide it.
    failures: list[str] = []

    def run() -> None:
        schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
        machine = schema.include(operation_id=LINKED).as_state_machine()

        class Sequences(machine):  # type: ignore[misc, valid-type]
            def setup(self) -> None:
                # Every sequence starts from an empty ledger and Cal.com: Hypothesis replays
                # sequences, and a replay must meet the answers the first run met (a create
                # answered 201 once is 200 the second time, which follows other links).
                d.on_loop(_forget_everything(d))

            def before_call(self, case: Case) -> None:
                self.events_before = d.event_count()
                if case.path == "/v1/booking-attempts" and isinstance(case.body, dict):
                    # Half the creates are moved into the bookable window, so sequences reach
                    # the workflow and the ledger rather than the date check alone; which half
                    # follows from the body, so that a replay sends the same request.
                    digest = zlib.crc32(repr(case.body).encode())
                    if digest % 2:
                        start = INCIDENT_MORNING + timedelta(days=1 + digest % 600)
                        case.body = {
                            **case.body,
                            "event_type_id": PLAIN,
                            "start": start.replace(minute=0, second=0).isoformat(),
                        }

            def get_call_kwargs(self, case: Case) -> dict[str, Any]:
                return {
                    "base_url": base_url,
                    "headers": {"Authorization": f"Bearer {TOKEN}"},
                    "timeout": 30,
                }

            def after_call(self, response: Any, case: Case) -> None:
                content_type = response.headers.get("content-type", [""])[0]
                try:
                    body = orjson.loads(response.content)
                except orjson.JSONDecodeError:
                    body = None
                where = f"{case.method} {case.formatted_path} -> {response.status_code}"
                d.statuses[f"{case.method} {case.path} {response.status_code}"] += 1
                answer = Answer(where, response.status_code, content_type, response.text, body)
                try:
                    d.judge(answer, events_before=self.events_before)
                except AssertionError as e:
                    failures.append(str(e))
                    raise

            def validate_response(
                self,
                response: Any,
                case: Case,
                additional_checks: Any = None,
                **kwargs: Any,
            ) -> None:
                try:
                    case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
                except Exception as e:
                    failures.append(repr(e)[:3000])
                    raise

        base = property_settings(max(1, EXAMPLES // STEPS))
        Sequences.run(settings=settings(base, stateful_step_count=STEPS))

    try:
        await asyncio.to_thread(run)
    except Exception as e:
        if failures:
            raise AssertionError(f"first failure: {failures[0]}") from e
        raise
    # The links were followed: attempts were read back and their calls audited.
    assert d.statuses["POST /v1/booking-attempts 201"] > 0, d.statuses
    assert d.statuses["GET /v1/booking-attempts/{attempt_id} 200"] > 0, d.statuses
    assert d.statuses["GET /v1/calls/{call_id}/events 200"] > 0, d.statuses


async def _forget_everything(d: Driver) -> None:
    await d.quiet()
    # DELETE, not TRUNCATE: the app's background readers hold share locks that TRUNCATE's
    # exclusive lock deadlocks with. Checkpoints stay: positions keep growing, never repeat.
    tables = await d.harness.pool.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename <> ALL($1::text[])",
        [MIGRATIONS_TABLE, "projection_checkpoints"],
    )
    async with d.harness.pool.acquire() as connection, connection.transaction():
        for row in tables:
            await connection.execute(f'DELETE FROM "{row["tablename"]}"')
    # Not `simulator.reset()`: that also puts the simulator back on the real clock.
    d.harness.simulator.ledger.reset()
    d.harness.simulator.faults.clear()
