"""Webhook delivery of the simulated Cal.com: signed like Cal.com, sent in the background, faulty
on demand.

Cal.com's `sendPayload.ts` POSTs the JSON body once, with `X-Cal-Signature-256` (lower-case hex
HMAC-SHA256 of the body, or `no-secret-provided`), follows no redirect and does not retry: the
answer's status is only logged. The simulator does the same and keeps every delivery for
inspection. Faults (`drop`, `duplicate`, `delay:<ms>`, `reorder`) are scripted in their own queue,
one consumed per webhook in the order the webhooks are raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

WEBHOOK_VERSION = "2021-10-20"
NO_SECRET = "no-secret-provided"
WEBHOOK_FAULT_SYNTAX = "one of drop, duplicate, delay:<milliseconds>, reorder"
DeliveryState = Literal["queued", "held", "dropped", "delivered", "failed"]


class WebhookFault(BaseModel):
    """One scripted misbehaviour of the next webhook raised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # drop: never sent; duplicate: sent twice; delay: sent late, so later ones may overtake it;
    # reorder: held back and sent right after the next webhook.
    kind: Literal["drop", "duplicate", "delay", "reorder"]
    delay_ms: int = Field(0, ge=0)


def parse_webhook_fault(text: str) -> WebhookFault:
    """A webhook fault from its command-line spelling: `drop`, `duplicate`, `delay:300`, ..."""
    kind, _, arg = text.strip().partition(":")
    if arg and kind != "delay":
        raise ValueError(f"webhook fault {kind!r} takes no argument, got {text!r}")
    try:
        return WebhookFault.model_validate({"kind": kind, "delay_ms": arg or 0})
    except ValidationError as e:
        raise ValueError(f"bad webhook fault {text!r}: expected {WEBHOOK_FAULT_SYNTAX}") from e


def calcom_webhook_signature(body: bytes, secret: str | None) -> str:
    """`X-Cal-Signature-256` as Cal.com's createWebhookSignature computes it."""
    if not secret:
        return NO_SECRET
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class Delivery:
    """One webhook the simulator raised, and what became of it."""

    id: int
    trigger: str
    uid: str
    url: str
    body: bytes
    signature: str
    fault: str | None = None
    state: DeliveryState = "queued"
    status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The delivery as `GET /_simulator/webhooks` lists it."""
        return {
            "id": self.id,
            "trigger": self.trigger,
            "uid": self.uid,
            "url": self.url,
            "fault": self.fault,
            "state": self.state,
            "status": self.status,
            "error": self.error,
            "body": orjson.loads(self.body),
        }


@dataclass(slots=True)
class _Outgoing:
    delivery: Delivery
    delay_ms: int = 0
    done: bool = field(default=False)


class WebhookDispatcher:
    """Queues webhooks as Cal.com raises them and sends them from one background task."""

    def __init__(
        self,
        *,
        url: str | None = None,
        secret: str | None = None,
        faults: Iterable[WebhookFault] = (),
        timeout_seconds: float = 10.0,
    ) -> None:
        self.url = url
        self.secret = secret
        self.faults: deque[WebhookFault] = deque(faults)
        self.deliveries: list[Delivery] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._queue: deque[_Outgoing] = deque()
        self._held: list[_Outgoing] = []
        self._delayed: dict[asyncio.Task[None], _Outgoing] = {}
        self._unfinished = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._next_id = 1

    def enqueue(self, body: dict[str, Any]) -> list[Delivery]:
        """Queue `body` for the configured URL (none: Cal.com has no subscriber); its deliveries."""
        if self.url is None:
            return []
        fault = self.faults.popleft() if self.faults else None
        raw = orjson.dumps(body)
        label = None if fault is None else _spelling(fault)
        copies = 2 if fault is not None and fault.kind == "duplicate" else 1
        outgoing = [
            _Outgoing(self._record(body, raw, label), 0 if fault is None else fault.delay_ms)
            for _ in range(copies)
        ]
        if fault is not None and fault.kind == "drop":
            outgoing[0].delivery.state = "dropped"
            self._send_next([])  # a held webhook still goes after the (lost) next one
            return [outgoing[0].delivery]
        self._started(len(outgoing))
        if fault is not None and fault.kind == "reorder":
            for item in outgoing:
                item.delivery.state = "held"
            self._held.extend(outgoing)
            return [item.delivery for item in outgoing]
        self._send_next(outgoing)
        return [item.delivery for item in outgoing]

    def _send_next(self, outgoing: list[_Outgoing]) -> None:
        # A held webhook goes right after the next one, so the receiver sees them swapped.
        self._queue.extend([*outgoing, *self._held])
        for item in self._held:
            item.delivery.state = "queued"
        self._held.clear()
        self._wake.set()

    def add_faults(self, *faults: WebhookFault | str) -> None:
        """Script webhook faults, in order; strings use the command-line spelling."""
        self.faults.extend(parse_webhook_fault(f) if isinstance(f, str) else f for f in faults)

    def pending_faults(self) -> list[WebhookFault]:
        """The webhook faults not consumed yet."""
        return list(self.faults)

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait until every queued webhook was sent (or failed); TimeoutError after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError as e:
            held = f", {len(self._held)} held by a reorder fault" if self._held else ""
            raise TimeoutError(
                f"{self._unfinished} webhook(s) still unsent after {timeout} s{held}"
            ) from e

    def reset(self) -> None:
        """Forget faults, deliveries and unsent webhooks; keep the URL and secret."""
        self.faults.clear()
        self.deliveries.clear()
        for task in self._delayed:
            task.cancel()
        for item in [*self._queue, *self._held, *self._delayed.values()]:
            self._finished(item)
        self._queue.clear()
        self._held.clear()
        self._delayed.clear()

    async def running(self, app: web.Application) -> AsyncIterator[None]:
        """The sender task for the app's lifetime (a `cleanup_ctx` generator)."""
        sender = asyncio.create_task(self._send_forever(), name="calcom-simulator-webhooks")
        yield
        tasks = [sender, *self._delayed]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _send_forever(self) -> None:
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            while True:
                while self._queue:
                    item = self._queue.popleft()
                    if item.delay_ms:
                        # Its own task: the webhooks raised after it are not held up.
                        task = asyncio.create_task(self._send_late(session, item))
                        self._delayed[task] = item
                        task.add_done_callback(self._forget)
                    else:
                        await self._send(session, item)
                self._wake.clear()
                await self._wake.wait()

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._delayed.pop(task, None)

    async def _send_late(self, session: aiohttp.ClientSession, item: _Outgoing) -> None:
        await asyncio.sleep(item.delay_ms / 1000)
        await self._send(session, item)

    async def _send(self, session: aiohttp.ClientSession, item: _Outgoing) -> None:
        delivery = item.delivery
        headers = {
            "Content-Type": "application/json",
            "X-Cal-Signature-256": delivery.signature,
            "X-Cal-Webhook-Version": WEBHOOK_VERSION,
        }
        try:
            async with session.post(
                delivery.url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                delivery.status = response.status
                delivery.state = "delivered" if response.ok else "failed"
        except (aiohttp.ClientError, TimeoutError) as e:
            # Cal.com logs the failure and moves on: no retry, so neither here.
            delivery.state, delivery.error = "failed", repr(e)
        finally:
            self._finished(item)

    def _record(self, body: dict[str, Any], raw: bytes, fault: str | None) -> Delivery:
        assert self.url is not None
        payload = body.get("payload") or {}
        delivery = Delivery(
            id=self._next_id,
            trigger=str(body.get("triggerEvent")),
            uid=str(payload.get("uid")),
            url=self.url,
            body=raw,
            signature=calcom_webhook_signature(raw, self.secret),
            fault=fault,
        )
        self._next_id += 1
        self.deliveries.append(delivery)
        return delivery

    def _started(self, count: int) -> None:
        self._unfinished += count
        self._idle.clear()

    def _finished(self, item: _Outgoing) -> None:
        if item.done:
            return
        item.done = True
        self._unfinished -= 1
        if self._unfinished == 0:
            self._idle.set()


def _spelling(fault: WebhookFault) -> str:
    return f"delay:{fault.delay_ms}" if fault.kind == "delay" else fault.kind
