"""Signed webhook deliveries as Retell and Cal.com send them, for the e2e tests.

Retell's signature comes from Retell's own SDK (retell-sdk 6.2.13, pinned in pyproject.toml),
so a verifier that drifts from what Retell sends fails here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import ClientResponse
from retell.lib.webhook_auth import symmetric

from service.api.signatures import calcom_signature
from tests.e2e.conftest import Harness

RETELL_KEY = "key_retell_test"
CALCOM_SECRET = "whsec_calcom_test"
RETELL_PATH = "/v1/webhooks/retell"
CALCOM_PATH = "/v1/webhooks/calcom"


def retell_sign(body: bytes, *, timestamp_ms: int, key: str = RETELL_KEY) -> str:
    """`x-retell-signature` for `body`, computed by retell-sdk."""
    signature: str = symmetric["sign"](body.decode(), key, timestamp_ms)
    return signature


def now_ms(harness: Harness) -> int:
    return int(harness.clock.now().timestamp() * 1000)


async def post_retell(
    harness: Harness,
    body: dict[str, Any],
    *,
    signature: str | None = None,
    sign: bool = True,
) -> ClientResponse:
    """POST a Retell webhook signed now (or with `signature`, or unsigned)."""
    raw = orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["x-retell-signature"] = signature
    elif sign:
        headers["x-retell-signature"] = retell_sign(raw, timestamp_ms=now_ms(harness))
    return await harness.client.post(RETELL_PATH, data=raw, headers=headers)


async def post_calcom(
    harness: Harness,
    body: dict[str, Any] | bytes,
    *,
    signature: str | None = None,
    sign: bool = True,
) -> ClientResponse:
    """POST a Cal.com webhook signed with the test secret (or with `signature`, or unsigned)."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Cal-Signature-256"] = signature
    elif sign:
        headers["X-Cal-Signature-256"] = calcom_signature(raw, CALCOM_SECRET)
    return await harness.client.post(CALCOM_PATH, data=raw, headers=headers)
