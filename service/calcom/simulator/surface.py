"""What the simulator's HTTP faces (`routes`, `admin`) need of it, as a Protocol.

`server.CalcomSimulator` builds the app from `routes` and `admin`; they name it only through
this Protocol, so the simulator's modules import one another in one direction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from aiohttp import web
from multidict import CIMultiDict

from service.calcom.simulator.event_types import SimulatedHost
from service.calcom.simulator.faults import FaultQueue
from service.calcom.simulator.state import BookingLedger, SimulatedBooking
from service.calcom.simulator.webhook_payloads import Trigger
from service.calcom.simulator.webhooks import WebhookDispatcher

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the simulator received on a Cal.com endpoint."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: Any

    def to_json(self) -> dict[str, Any]:
        """The request as the admin endpoint lists it."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            # A real key sent here by mistake must not be shown back; the scheme is enough.
            "headers": {
                str(name): "Bearer ***" if name.lower() == "authorization" else value
                for name, value in self.headers.items()
            },
            "body": self.body,
        }


class Simulator(Protocol):
    """The simulator as its routes see it."""

    ledger: BookingLedger
    faults: FaultQueue
    now: Clock
    latency_ms: int
    api_key: str | None
    # Whose key every accepted key is (`GET /v2/me`).
    account: SimulatedHost
    revoked_keys: set[str]
    reject_past: bool
    requests: deque[RecordedRequest]
    webhooks: WebhookDispatcher

    def record(self, request: web.Request, body: Any) -> None: ...

    def set_clock(
        self, moment: datetime | None = None, *, offset: timedelta | None = None
    ) -> None: ...

    def reset(self) -> None: ...

    async def hang(self, seconds: float) -> None: ...

    def rate_headers(self, key: str) -> tuple[dict[str, str], bool]: ...

    def notify(
        self, trigger: Trigger, booking: SimulatedBooking, *, confirmed_by_host: bool = False
    ) -> None: ...

    def accept(self, uid: str) -> SimulatedBooking: ...

    def decline(self, uid: str, reason: str | None = None) -> SimulatedBooking: ...

    def cancel_as_attendee(self, uid: str, reason: str | None = None) -> SimulatedBooking: ...

    def set_webhook(self, url: str | None, secret: str | None = None) -> None: ...
