"""The simulator's controls for a booking's life after the create, under `/_simulator`.

- `POST /_simulator/bookings/{uid}/accept`: the host confirms a pending booking (409 otherwise).
- `POST /_simulator/bookings/{uid}/decline` `{"reason"}`: the host rejects a pending booking.
- `POST /_simulator/bookings/{uid}/cancel` `{"reason"}`: the attendee cancels from Cal.com's
  e-mail (not through the API; 409 when already cancelled).
- `GET /_simulator/webhooks`: the configured URL and every delivery with its HTTP status;
  `POST /_simulator/webhooks` `{"url", "secret"}` sets where webhooks go (`url` null: nowhere).
- `GET|POST|DELETE /_simulator/webhook-faults`: list, append (`"drop"`, `"duplicate"`,
  `"delay:300"`, `"reorder"`, an object, a list, or `{"faults": [...]}`), clear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from service.calcom.simulator.admin import PREFIX, _bad, _json_body, _ok
from service.calcom.simulator.input import SimulatedError
from service.calcom.simulator.state import SimulatedBooking
from service.calcom.simulator.surface import Simulator
from service.calcom.simulator.webhooks import WebhookFault, parse_webhook_fault


def add_lifecycle_routes(app: web.Application, sim: Simulator) -> None:
    """Register the host's and attendee's actions and the webhook controls of `sim`."""
    admin = _Lifecycle(sim)
    app.router.add_routes(
        [
            web.post(f"{PREFIX}/bookings/{{uid}}/accept", admin.accept),
            web.post(f"{PREFIX}/bookings/{{uid}}/decline", admin.decline),
            web.post(f"{PREFIX}/bookings/{{uid}}/cancel", admin.cancel),
            web.get(f"{PREFIX}/webhooks", admin.webhooks),
            web.post(f"{PREFIX}/webhooks", admin.set_webhook),
            web.get(f"{PREFIX}/webhook-faults", admin.faults),
            web.post(f"{PREFIX}/webhook-faults", admin.add_faults),
            web.delete(f"{PREFIX}/webhook-faults", admin.clear_faults),
        ]
    )


class _Lifecycle:
    """The handlers of the lifecycle and webhook routes, over one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def accept(self, request: web.Request) -> web.Response:
        """The host accepts."""
        return _acted(lambda: self.sim.accept(request.match_info["uid"]))

    async def decline(self, request: web.Request) -> web.Response:
        """The host declines, with an optional reason."""
        reason = await _reason(request)
        return _acted(lambda: self.sim.decline(request.match_info["uid"], reason))

    async def cancel(self, request: web.Request) -> web.Response:
        """The attendee cancels, with an optional reason."""
        reason = await _reason(request)
        return _acted(lambda: self.sim.cancel_as_attendee(request.match_info["uid"], reason))

    async def webhooks(self, request: web.Request) -> web.Response:
        """Where webhooks go and what became of each."""
        dispatcher = self.sim.webhooks
        return _ok(
            {
                "url": dispatcher.url,
                "signed": dispatcher.secret is not None,
                "data": [d.to_json() for d in dispatcher.deliveries],
            }
        )

    async def set_webhook(self, request: web.Request) -> web.Response:
        """Point webhooks at a URL, with or without a secret."""
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) - {"url", "secret"}:
            raise _bad('expected {"url": "<http(s) URL>" | null, "secret": "<text>" | null}')
        url, secret = body.get("url"), body.get("secret")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise _bad(f"url must be an http(s) URL or null, got {url!r}")
        if secret is not None and not isinstance(secret, str):
            raise _bad("secret must be a string or null")
        self.sim.set_webhook(url, secret)
        return _ok({"url": url, "signed": secret is not None})

    async def faults(self, request: web.Request) -> web.Response:
        """The webhook faults not consumed yet."""
        return _ok(_pending(self.sim))

    async def add_faults(self, request: web.Request) -> web.Response:
        """Append webhook faults to their script."""
        body = await _json_body(request)
        items = body.get("faults") if isinstance(body, dict) and "faults" in body else body
        try:
            faults = [_fault(item) for item in (items if isinstance(items, list) else [items])]
        except (ValueError, ValidationError) as e:
            raise _bad(str(e)) from e
        self.sim.webhooks.add_faults(*faults)
        return _ok(_pending(self.sim))

    async def clear_faults(self, request: web.Request) -> web.Response:
        """Forget the scripted webhook faults."""
        self.sim.webhooks.faults.clear()
        return _ok(_pending(self.sim))


def _acted(action: Callable[[], SimulatedBooking]) -> web.Response:
    """Run a booking action: the booking in Cal.com's shape, or the refusal with its status."""
    try:
        booking = action()
    except SimulatedError as e:
        return web.Response(
            status=e.status,
            body=orjson.dumps({"error": e.code, "detail": e.message}),
            content_type="application/json",
        )
    return _ok({"data": booking.to_calcom()})


async def _reason(request: web.Request) -> str | None:
    """The optional `reason` of a decline or cancel; no body at all is no reason."""
    if not request.can_read_body:
        return None
    body = await _json_body(request)
    reason = body.get("reason") if isinstance(body, dict) else body
    if not isinstance(body, dict) or not isinstance(reason, str | None):
        raise _bad('expected {"reason": "<text>"} or no body')
    return reason


def _fault(item: Any) -> WebhookFault:
    if isinstance(item, str):
        return parse_webhook_fault(item)
    return WebhookFault.model_validate(item)


def _pending(sim: Simulator) -> dict[str, Any]:
    return {"pending": [f.model_dump(exclude_defaults=True) for f in sim.webhooks.pending_faults()]}
