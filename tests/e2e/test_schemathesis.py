"""schemathesis against the running service, over real HTTP on loopback, from its own
`/openapi.json`: no 5xx, every 4xx a JSON error body, no refused request writes an event, and
every answer is the status, content type and body the document says.

schemathesis and Hypothesis are synchronous (requests), so they run in a worker thread while the
server keeps serving on the test's event loop; the thread asks the loop for the event count.
Seeded (`derandomize`) and bounded, so a run is repeatable and takes seconds. Beside the
document's own positive and negative cases, half the webhook cases are signed correctly and
some booking cases are moved into the bookable window, so the fuzzing reaches the handlers and
the workflow instead of stopping at the signature check and the date check.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.keys import BACKGROUND_ATTEMPTS
from service.api.signatures import calcom_signature, retell_signature
from service.booking.background import BackgroundAttempts
from tests.conftest import wait_until
from tests.e2e.conftest import INCIDENT_MORNING, PLAIN, RETURNS_EXISTING, Harness, MakeHarness
from tests.e2e.signed import CALCOM_PATH, CALCOM_SECRET, RETELL_KEY, RETELL_PATH, now_ms

Case = schemathesis.Case[Any]
TOKEN = "schemathesis-token"
EXAMPLES_PER_OPERATION = 40
T = TypeVar("T")
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
BOOKABLE_STARTS = st.integers(min_value=1, max_value=600).map(
    lambda days: (INCIDENT_MORNING + timedelta(days=days)).replace(minute=0, second=0).isoformat()
)


class Fuzz:
    """The thread's view of the service: its URL, and the event loop that owns the harness."""

    def __init__(self, harness: Harness, loop: asyncio.AbstractEventLoop) -> None:
        self.harness = harness
        self.loop = loop
        self.base_url = str(harness.client.make_url("")).rstrip("/")
        self.statuses: Counter[str] = Counter()
        self.served = {
            (route.method, route.resource.canonical)
            for route in harness.client.app.router.routes()
            if route.resource is not None
        }

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def _quiet_event_count(self) -> int:
        # A 202 from `Prefer: respond-async` keeps writing after its answer: let it land first.
        tracker = self.harness.client.app[BACKGROUND_ATTEMPTS]
        await wait_until(lambda: _idle(tracker), timeout=10)
        return await self.harness.event_count()

    def event_count(self) -> int:
        return self.on_loop(self._quiet_event_count())

    def sign(self, case: Case) -> bytes | None:
        """Sign the body the case will send, as Retell or Cal.com would; the raw bytes to send."""
        if not isinstance(case.body, dict | list):
            return None
        # The standard library, like requests: it writes integers beyond 64 bits and lone
        # surrogates (escaped), which the service must then refuse by itself.
        raw = json.dumps(case.body).encode()
        if case.path == RETELL_PATH:
            signature = retell_signature(raw, RETELL_KEY, now_ms(self.harness))
            case.headers["x-retell-signature"] = signature
        elif case.path == CALCOM_PATH:
            signature = calcom_signature(raw, CALCOM_SECRET)
            case.headers["X-Cal-Signature-256"] = signature
        return raw

    def check(self, case: Case, *, signed: bool) -> None:
        """Send one case and judge the answer."""
        before = self.event_count()
        raw = self.sign(case) if signed else None
        extra: dict[str, Any] = {} if raw is None else {"data": raw}
        response = case.call(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
            **extra,
        )
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        self.statuses[f"{case.method} {case.path} {response.status_code}"] += 1
        assert response.status_code < 500, f"{where}: {response.text[:500]}"
        if (case.method, case.path) in self.served:
            # The answer is what the document says: status, content type, body schema. (A
            # documented route the app does not serve yet answers 404 and is judged only by the
            # checks below; tests/e2e/test_openapi.py checks the other direction.)
            case.validate_response(response, checks=CONFORMANCE)
        if response.status_code < 400:
            return
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), f"{where}: {content_type}"
        body = response.json()
        is_outcome = isinstance(body, dict) and "attempt_id" in body and "status" in body
        assert isinstance(body, dict) and (is_outcome or isinstance(body.get("error"), str)), (
            f"{where}: {body}"
        )
        if not is_outcome:
            # A refusal; only an attempt's business outcome (409 rejected, 422 from Cal.com) is
            # allowed to leave events behind.
            assert self.event_count() == before, f"{where} wrote events: {body}"

    def strategy(self, operation: Any) -> st.SearchStrategy[tuple[Case, bool]]:
        positive = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
        negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        # The document's own examples, beside what schemathesis generates from the schemas.
        cases = st.one_of(*operation.get_strategies_from_examples(), positive, negative)
        if operation.path in (RETELL_PATH, CALCOM_PATH):
            return st.tuples(cases, st.booleans())
        if operation.path == "/v1/booking-attempts":
            bookable = st.tuples(
                positive, BOOKABLE_STARTS, st.sampled_from([PLAIN, RETURNS_EXISTING])
            ).map(_bookable)
            cases = st.one_of(cases, bookable)
        return st.tuples(cases, st.just(False))

    def run(self) -> list[str]:
        """Fuzz every operation of the document; return their labels."""
        schema = schemathesis.openapi.from_url(f"{self.base_url}/openapi.json")
        labels = []
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            labels.append(operation.label)

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(drawn=self.strategy(operation))
            def fuzz(drawn: tuple[Case, bool]) -> None:
                case, signed = drawn
                self.check(case, signed=signed)

            fuzz()
        return labels


async def _idle(tracker: BackgroundAttempts) -> bool:
    return tracker.pending == 0


def _bookable(drawn: tuple[Case, str, int]) -> Case:
    case, start, event_type_id = drawn
    if isinstance(case.body, dict):
        case.body = {**case.body, "start": start, "event_type_id": event_type_id}
    return case


async def test_schemathesis_finds_no_5xx_and_no_refusal_that_writes(
    make_harness: MakeHarness,
) -> None:
    harness = await make_harness(
        api_tokens=[TOKEN],
        retell_api_key=RETELL_KEY,
        calcom_webhook_secret=CALCOM_SECRET,
        fallback_email="termin@example.com",
    )
    fuzz = Fuzz(harness, asyncio.get_running_loop())
    labels = await asyncio.to_thread(fuzz.run)
    assert "POST /v1/booking-attempts" in labels
    assert "POST /v1/webhooks/calcom" in labels
    # The fuzzing got past the doors: bookings were made, signed webhooks were handled.
    reached = {key.rsplit(" ", 1)[0] for key, _ in fuzz.statuses.items() if key[-3] == "2"}
    assert {"POST /v1/booking-attempts", "POST /v1/webhooks/retell"} <= reached, fuzz.statuses
    assert "POST /v1/webhooks/calcom" in reached, fuzz.statuses
    assert fuzz.statuses["POST /v1/webhooks/retell 200"] > 0, fuzz.statuses
