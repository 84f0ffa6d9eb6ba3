"""Attempts driven in the background after their producer was answered 202 (respond-async).

The tracker belongs to the app (service/app.py closes it before the pool): closing waits a
little for running attempts and cancels the rest; an attempt cancelled mid-flight stays in flight
on its idempotency key, and recovery drives it to an outcome after the grace period (DESIGN.md §9).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_SECONDS = 10.0


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
