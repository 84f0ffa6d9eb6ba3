"""`Prefer: respond-async` (RFC 7240): answer 202 once the intent is recorded, book in the back.

The attempt's intent commits before the 202 goes out, so its Location answers at once
(`pending` until the outcome lands). The background tasks belong to the app: its cleanup waits
a little for them and cancels the rest; an attempt cancelled mid-flight stays in flight on its
idempotency key, and recovery drives it to an outcome after the grace period (DESIGN.md §9).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import orjson
from aiohttp import web

from service.attempts import BookingResult, ClaimedAttempt
from service.booking_models import BookingRequest
from service.workflow import BookingWorkflow

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_SECONDS = 10.0


def prefers_async(request: web.Request) -> bool:
    """Whether a `Prefer` header asks for `respond-async` (any case, among other preferences)."""
    for header in request.headers.getall("Prefer", []):
        for preference in header.split(","):
            token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if token == "respond-async":
                return True
    return False


class BackgroundAttempts:
    """The attempts this process is driving after answering 202."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Run `work` in the background, owned by this tracker until it ends."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The outcome is not lost: the key stays in flight and recovery drives it later.
            log.error("background %s failed", task.get_name(), exc_info=task.exception())

    @property
    def pending(self) -> int:
        """How many background attempts are still running."""
        return len(self._tasks)

    async def close(self, *, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Let running attempts finish for up to `timeout` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, still_running = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in still_running:
            task.cancel()
        await asyncio.gather(*still_running, return_exceptions=True)


BACKGROUND_ATTEMPTS = web.AppKey("background_attempts", BackgroundAttempts)


async def background_attempts(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the tracker lives as long as the app; its tasks end before the pool closes."""
    tracker = BackgroundAttempts()
    app[BACKGROUND_ATTEMPTS] = tracker
    yield
    await tracker.close()


async def submit(
    request: web.Request,
    workflow: BookingWorkflow,
    body: BookingRequest,
    *,
    idempotency_key: str | None,
) -> web.Response | BookingResult:
    """Claim the attempt and answer 202, or the stored answer when the key already has one."""
    claimed = await workflow.claim(
        body,
        idempotency_key=idempotency_key,
        correlation_id=request.headers.get("X-Correlation-Id"),
    )
    if not isinstance(claimed, ClaimedAttempt):
        return claimed
    request.app[BACKGROUND_ATTEMPTS].spawn(
        workflow.drive(claimed), name=f"booking attempt {claimed.attempt_id}"
    )
    location = f"/v1/booking-attempts/{claimed.attempt_id}"
    return web.Response(
        body=orjson.dumps({"attempt_id": str(claimed.attempt_id), "status": "pending"}),
        status=202,
        content_type="application/json",
        headers={"Location": location, "Preference-Applied": "respond-async"},
    )
