"""The simulator's own controls under `/_simulator`: script faults, set the clock, inspect, reset.

- `GET /_simulator/bookings`: every booking, any status, in Cal.com's shape.
- `GET /_simulator/event-types`: the configured event types and their kinds.
- `GET|POST|DELETE /_simulator/faults`: list, append (a fault object, its command-line spelling
  such as `"429:2"`, a list of them, or `{"faults": [...]}`), clear the scripted faults.
- `GET|POST /_simulator/clock`: read; `{"now": "<ISO time>"}` freezes it, `{"offset_seconds": n}`
  runs it n seconds from real time, `{"now": null}` goes back to real time.
- `POST /_simulator/settings`: any of `latency_ms`, `rate_limit`, `enforce_rate_limit`,
  `reject_past`, `clock_skew_seconds` (Cal.com's clock that far from ours: the clock's offset).
- `GET /_simulator/requests`: the last 1,000 requests to `/v2`, with headers and bodies.
- `POST /_simulator/keys/revoke` `{"key"}`: Cal.com answers 401 to that key from now on;
  `POST /_simulator/keys/restore` `{"key"}` accepts it again (any other key is always accepted).
- `POST /_simulator/reset`: forget bookings, faults, requests; real clock; release hung requests.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from service.calcom.port import to_calcom_time
from service.calcom.simulator.faults import Fault, parse_fault
from service.calcom.simulator.input import SimulatedError, parse_time
from service.calcom.simulator.surface import Simulator

PREFIX = "/_simulator"
# What `POST /_simulator/settings` may change, and the JSON type each takes.
_SETTINGS: dict[str, type] = {
    "latency_ms": int,
    "rate_limit": int,
    "enforce_rate_limit": bool,
    "reject_past": bool,
    "clock_skew_seconds": float,
}


def add_admin_routes(app: web.Application, sim: Simulator) -> None:
    """Register the `/_simulator` routes controlling `sim`."""
    admin = _Admin(sim)
    app.router.add_routes(
        [
            web.get(f"{PREFIX}/bookings", admin.bookings),
            web.get(f"{PREFIX}/event-types", admin.event_types),
            web.get(f"{PREFIX}/faults", admin.faults),
            web.post(f"{PREFIX}/faults", admin.add_faults),
            web.delete(f"{PREFIX}/faults", admin.clear_faults),
            web.get(f"{PREFIX}/clock", admin.clock),
            web.post(f"{PREFIX}/clock", admin.set_clock),
            web.post(f"{PREFIX}/settings", admin.settings),
            web.get(f"{PREFIX}/requests", admin.requests),
            web.post(f"{PREFIX}/keys/revoke", admin.revoke_key),
            web.post(f"{PREFIX}/keys/restore", admin.restore_key),
            web.post(f"{PREFIX}/reset", admin.reset),
        ]
    )


class _Admin:
    """The handlers of the `/_simulator` routes, over one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def bookings(self, request: web.Request) -> web.Response:
        """Every booking, any status."""
        return _ok({"data": [b.to_calcom() for b in self.sim.ledger.bookings.values()]})

    async def event_types(self, request: web.Request) -> web.Response:
        """The configured event types."""
        return _ok({"data": [asdict(e) for e in self.sim.ledger.event_types.values()]})

    async def faults(self, request: web.Request) -> web.Response:
        """The faults not consumed yet."""
        return _ok(_pending(self.sim))

    async def add_faults(self, request: web.Request) -> web.Response:
        """Append faults to the script."""
        body = await _json_body(request)
        items = body.get("faults") if isinstance(body, dict) and "faults" in body else body
        try:
            faults = [_fault(item) for item in (items if isinstance(items, list) else [items])]
        except (ValueError, ValidationError) as e:
            raise _bad(str(e)) from e
        self.sim.faults.add(*faults)
        return _ok(_pending(self.sim))

    async def clear_faults(self, request: web.Request) -> web.Response:
        """Forget the scripted faults."""
        self.sim.faults.clear()
        return _ok(_pending(self.sim))

    async def clock(self, request: web.Request) -> web.Response:
        """The simulator's current time."""
        return _ok({"now": to_calcom_time(self.sim.now())})

    async def set_clock(self, request: web.Request) -> web.Response:
        """Freeze, shift or restore the simulator's clock."""
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _bad('expected {"now": "<ISO time>" | null} or {"offset_seconds": <number>}')
        try:
            if body.get("now") is not None:
                self.sim.set_clock(parse_time(body["now"], "now must be an ISO 8601 time"))
            elif body.get("offset_seconds") is not None:
                self.sim.set_clock(offset=timedelta(seconds=float(body["offset_seconds"])))
            else:
                self.sim.set_clock()
        except SimulatedError as e:
            raise _bad(e.message) from e
        except (TypeError, ValueError) as e:
            raise _bad(f"offset_seconds must be a number, got {body['offset_seconds']!r}") from e
        return _ok({"now": to_calcom_time(self.sim.now())})

    async def settings(self, request: web.Request) -> web.Response:
        """Change latency, rate limiting or the past-booking check."""
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _bad("expected an object of settings")
        for name, value in body.items():
            kind = _SETTINGS.get(name)
            if kind is None or not (type(value) is kind or (kind is float and type(value) is int)):
                names = ", ".join(_SETTINGS)
                raise _bad(f"unknown setting or wrong type: {name}={value!r}; settings: {names}")
            setattr(self.sim, name, value)
        return _ok({name: getattr(self.sim, name) for name in _SETTINGS})

    async def requests(self, request: web.Request) -> web.Response:
        """The recorded requests to Cal.com endpoints."""
        return _ok({"data": [r.to_json() for r in self.sim.requests]})

    async def revoke_key(self, request: web.Request) -> web.Response:
        """Refuse one API key from now on, as Cal.com does once its owner deletes it."""
        self.sim.revoked_keys.add(await _key(request))
        return _ok({"revoked": len(self.sim.revoked_keys)})

    async def restore_key(self, request: web.Request) -> web.Response:
        """Accept a revoked key again."""
        self.sim.revoked_keys.discard(await _key(request))
        return _ok({"revoked": len(self.sim.revoked_keys)})

    async def reset(self, request: web.Request) -> web.Response:
        """Start from nothing."""
        self.sim.reset()
        return _ok({"reset": True})


async def _key(request: web.Request) -> str:
    body = await _json_body(request)
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        raise _bad('expected {"key": "<API key>"}')
    return key


def _fault(item: Any) -> Fault:
    return parse_fault(item) if isinstance(item, str) else Fault.model_validate(item)


def _pending(sim: Simulator) -> dict[str, Any]:
    return {"pending": [f.model_dump(exclude_defaults=True) for f in sim.faults.pending()]}


async def _json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as e:
        raise _bad(f"the body is not JSON: {e}") from e


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        body=orjson.dumps({"error": "bad_request", "detail": message}),
        content_type="application/json",
    )


def _ok(data: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")
