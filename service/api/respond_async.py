"""`Prefer: respond-async` (RFC 7240): answer 202 once the intent is recorded, book in the back.

The attempt's intent commits before the 202 goes out, so its Location answers at once
(`pending` until the outcome lands); the attempt then runs on the app's `BackgroundAttempts`
(service/booking/background.py), whose lifetime `service/app.py` owns.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from service.api.keys import BACKGROUND_ATTEMPTS
from service.booking.attempt import BookingResult, ClaimedAttempt
from service.booking.models import BookingRequest
from service.booking.workflow import BookingWorkflow


def prefers_async(request: web.Request) -> bool:
    """Whether a `Prefer` header asks for `respond-async` (any case, among other preferences)."""
    for header in request.headers.getall("Prefer", []):
        for preference in header.split(","):
            token = preference.split(";", 1)[0].split("=", 1)[0].strip().lower()
            if token == "respond-async":
                return True
    return False


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
