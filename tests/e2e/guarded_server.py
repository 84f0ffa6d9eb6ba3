"""aiohttp's TestServer with production's runner, so e2e tests cross the same protocol."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from service.api.wire import GuardedRunner


class GuardedTestServer(TestServer):
    """A TestServer whose connections are GuardedRequestHandler's, as under `serve`."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return GuardedRunner(self.app, **kwargs)
