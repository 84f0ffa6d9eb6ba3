"""Runs Hypothesis against the harness, and the invariants every answer must keep.

Hypothesis is synchronous, so a property runs in a worker thread (as tests/e2e/test_schemathesis.py
does) while the app and the simulator keep serving on the test's event loop; every request and
every ledger read is a coroutine handed to that loop.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from hypothesis import HealthCheck, Phase, seed, settings

from events.booking import OUTCOME_TYPES, attempt_stream
from service.api.keys import BACKGROUND_ATTEMPTS
from service.booking.background import BackgroundAttempts
from tests.conftest import wait_until
from tests.e2e.conftest import Harness

T = TypeVar("T")

EXAMPLES = int(os.environ.get("BOOKING_GUARD_PROPERTY_EXAMPLES", "150"))
SEED = os.environ.get("BOOKING_GUARD_PROPERTY_SEED")
TOKEN = "property-test-token-0123456789"
FAILURE_KEYS = {"attempt_id", "status", "reason", "retryable"}


def property_settings(examples: int = EXAMPLES) -> settings:
    """Bounded by the number of examples (Hypothesis has no time limit of its own, and rejecting
    examples after a deadline still draws them), without an example database in the repository
    (`database=None`)."""
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=SEED is None,
        # Shrinking is the point of a failure; it gets the rest of the time budget.
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )


def seeded(test: Callable[..., None]) -> Callable[..., None]:
    """Apply BOOKING_GUARD_PROPERTY_SEED when it is set (without it runs are derandomized)."""
    return seed(int(SEED))(test) if SEED is not None else test


@dataclass
class Answer:
    """One answer of the app, as the properties judge it."""

    where: str
    status: int
    content_type: str
    text: str
    body: Any = None

    @property
    def is_outcome(self) -> bool:
        """An attempt's business outcome (409 rejected, 422 from Cal.com, a recorded 502...)."""
        return isinstance(self.body, dict) and "attempt_id" in self.body and "status" in self.body


@dataclass
class Driver:
    """The thread's view of the harness, and the checks after each request."""

    harness: Harness
    loop: asyncio.AbstractEventLoop
    statuses: Counter[str] = field(default_factory=Counter)

    def on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def post(self, path: str, raw: bytes, headers: dict[str, str]) -> Answer:
        return self.on_loop(self._request("POST", path, raw, headers))

    def get(self, path: str) -> Answer:
        return self.on_loop(self._request("GET", path, None, {}))

    async def _request(
        self, method: str, path: str, raw: bytes | None, headers: dict[str, str]
    ) -> Answer:
        sent = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **headers}
        response = await self.harness.client.request(method, path, data=raw, headers=sent)
        text = await response.text(errors="replace")
        content_type = response.headers.get("Content-Type", "")
        try:
            body = orjson.loads(text) if content_type.startswith("application/json") else None
        except orjson.JSONDecodeError:
            body = None
        where = f"{method} {path} -> {response.status}"
        self.statuses[f"{method} {path.split('?')[0]} {response.status}"] += 1
        return Answer(where, response.status, content_type, text, body)

    def event_count(self) -> int:
        return self.on_loop(self._quiet_event_count())

    async def quiet(self) -> None:
        """Wait until no attempt runs in the background (a 202 of `Prefer: respond-async` goes
        on writing after its answer), so that what is counted and checked has settled."""
        tracker = self.harness.client.app[BACKGROUND_ATTEMPTS]
        await wait_until(lambda: _idle(tracker), timeout=30)

    async def _quiet_event_count(self) -> int:
        await self.quiet()
        return await self.harness.event_count()

    def judge(self, answer: Answer, *, events_before: int) -> None:
        """The invariants of every answer, and of the ledger after it."""
        self.on_loop(self._judge(answer, events_before))

    async def _judge(self, answer: Answer, events_before: int) -> None:
        where = f"{answer.where}: {answer.text[:600]}"
        assert answer.status != 500 and answer.status < 600, where
        if answer.status >= 500:
            assert answer.status in (502, 503, 504), where
            assert isinstance(answer.body, dict) and answer.body.keys() >= FAILURE_KEYS, where
            assert answer.body["status"] == "failed", where
            assert isinstance(answer.body["retryable"], bool), where
            assert isinstance(answer.body["reason"], str) and answer.body["reason"], where
            outcomes = await self._outcomes(uuid.UUID(answer.body["attempt_id"]))
            assert len(outcomes) == 1, f"{where}: the failure's outcome events are {outcomes}"
        elif answer.status >= 400 and not answer.is_outcome:
            assert answer.content_type.startswith("application/json"), where
            body = answer.body
            assert isinstance(body, dict) and isinstance(body.get("error"), str), where
            assert body["error"] and body.get("detail") not in (None, "", [], {}), where
            assert await self._quiet_event_count() == events_before, f"{where} wrote events"
        await self.quiet()
        await self._no_attempt_left_open(where)

    async def _outcomes(self, attempt_id: uuid.UUID) -> list[str]:
        rows = await self.harness.pool.fetch(
            "SELECT type FROM events WHERE stream_id = $1 AND type = ANY($2::text[])",
            attempt_stream(attempt_id),
            list(OUTCOME_TYPES),
        )
        return [row["type"] for row in rows]

    async def _no_attempt_left_open(self, where: str) -> None:
        # Once the answer is given, every BookingRequested has exactly one outcome on its stream.
        rows = await self.harness.pool.fetch(
            """
            SELECT r.stream_id, array_remove(array_agg(o.type), NULL) AS outcomes
            FROM events r
            LEFT JOIN events o ON o.stream_id = r.stream_id AND o.type = ANY($1::text[])
            WHERE r.type = 'BookingRequested'
            GROUP BY r.stream_id
            HAVING count(o.position) <> 1
            """,
            list(OUTCOME_TYPES),
        )
        assert not rows, f"{where}: attempts without exactly one outcome: {[dict(r) for r in rows]}"
        keys = await self.harness.pool.fetch(
            "SELECT key FROM idempotency_keys WHERE status = 'in_flight'"
        )
        assert not keys, f"{where}: keys left in flight: {[row['key'] for row in keys]}"


async def _idle(tracker: BackgroundAttempts) -> bool:
    return tracker.pending == 0
