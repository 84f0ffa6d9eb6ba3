"""`booking-guard demo`: the incident, replayed against a running service, step by step."""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

DEMO_EVENT_TYPE_ID = 1001  # the simulator's round-robin type, which returns existing bookings
SHARED_FALLBACK = "termin@example.com"


def demo_slot(now: datetime) -> datetime:
    """A slot tomorrow morning, a little different each run so old demo bookings don't answer."""
    tomorrow = (now + timedelta(days=1)).replace(hour=6, minute=0, second=0, microsecond=0)
    return tomorrow + timedelta(minutes=5 * random.randrange(0, 96))


def attempt_body(call_id: str, name: str, start: datetime) -> dict[str, Any]:
    return {
        "call_id": call_id,
        "event_type_id": DEMO_EVENT_TYPE_ID,
        "start": start.isoformat().replace("+00:00", "Z"),
        # Both calls send the same shared address, as the phone agent in the incident did.
        "attendee": {"name": name, "email": SHARED_FALLBACK, "time_zone": "Europe/Berlin"},
        "metadata": {"source": "booking-guard demo"},
    }


async def run_demo(url: str, *, gap_seconds: float, token: str | None) -> int:
    """Book as call 687, then as call 688 for the same slot; print outcomes and timelines."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    suffix = uuid.uuid4().hex[:8]
    calls = [
        (f"call_687_demo_{suffix}", "Hansi Sputer"),
        (f"call_688_demo_{suffix}", "Hans Schuster"),
    ]
    slot = demo_slot(datetime.now(UTC))
    print(f"booking-guard demo against {url}: slot {slot.isoformat()}, event type 1001")
    async with aiohttp.ClientSession(base_url=url, headers=headers) as session:
        outcomes = []
        for n, (call_id, name) in enumerate(calls):
            if n == 1 and gap_seconds > 0:
                print(f"... waiting {gap_seconds:g} s, as call 688 came 35 minutes later")
                await asyncio.sleep(gap_seconds)
            async with session.post(
                "/v1/booking-attempts", json=attempt_body(call_id, name, slot)
            ) as r:
                body = await r.json()
            outcomes.append(body)
            print(f"\n{call_id} ({name}) -> HTTP {r.status}: {_summary(body)}")
        for call_id, _ in calls:
            print(f"\ntimeline of {call_id}:")
            async with session.get(f"/v1/calls/{call_id}/events") as r:
                if r.status != 200:
                    print(f"  (audit timeline not available: HTTP {r.status})")
                    continue
                page = await r.json()
            for event in page.get("events", []):
                print("  " + _event_line(event))
    first, second = outcomes
    ok = first.get("status") == "confirmed" and second.get("status") == "rejected"
    print("\nthe guard held: one appointment, call 688 refused" if ok else "\nunexpected outcome")
    return 0 if ok else 1


def _summary(body: dict[str, Any]) -> str:
    if body.get("status") == "confirmed":
        appointment = body.get("appointment") or {}
        return f"confirmed, Cal.com booking {appointment.get('booking_uid')}"
    if body.get("status") == "rejected":
        failures = (body.get("detail") or {}).get("failures") or []
        layers = ", ".join(f"{f['guard']}: {f['reason']}" for f in failures)
        return f"rejected by {body.get('guard')} ({body.get('reason')}); failing layers: {layers}"
    return f"{body.get('status') or body.get('error')}: {body}"


def _event_line(event: dict[str, Any]) -> str:
    data = event.get("data", {})
    extra = ""
    if event.get("type") == "BookingRejected":
        extra = f" guard={data.get('guard')} reason={data.get('reason')}"
    elif "booking_uid" in data:
        extra = f" booking={data['booking_uid']}"
    return f"{event.get('recorded_at', '')[:23]}  {event.get('type')}{extra}"


def service_url(host: str, port: int) -> str:
    """The origin `serve` answers on when it listens on `host` and `port`."""
    # A wildcard address listens everywhere, loopback included; a client cannot dial it.
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal in a URL
    return f"http://{host}:{port}"


def add_demo_command(commands: Any) -> None:
    """`demo`, on the console script's subcommands."""
    demo = commands.add_parser("demo", help="replay the incident against a running service")
    demo.add_argument(
        "--url",
        help="the service's origin (default: where `serve` listens, from BOOKING_GUARD_HOST and "
        "BOOKING_GUARD_PORT: http://127.0.0.1:8080)",
    )
    demo.add_argument(
        "--gap-seconds",
        type=float,
        default=0.0,
        help="wait between the two calls; above BOOKING_GUARD_FRESHNESS_MAX_AGE_SECONDS the "
        "freshness layer fires too (default 0: call identity alone refuses call 688)",
    )
    demo.add_argument("--token", help="bearer token, when BOOKING_GUARD_API_TOKENS is set")


def main(url: str, *, gap_seconds: float, token: str | None) -> int:
    try:
        return asyncio.run(run_demo(url, gap_seconds=gap_seconds, token=token))
    except aiohttp.ClientError as e:
        print(
            f"booking-guard demo: cannot reach {url}: {e}. Start it with `make run`.",
            file=sys.stderr,
        )
        return 1
