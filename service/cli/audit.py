"""`booking-guard audit call <id>` and `audit booking <uid>`: timelines a person can read.

`audit booking` puts each call in a column of its own, so an incident (call 687 confirmed a
booking; Cal.com handed the same booking to call 688, which was rejected) reads side by side.
`--json` prints the events as the HTTP audit endpoints do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from events.errors import DatabaseUnavailable
from events.models import RecordedEvent
from events.store import Cursor
from projections import audit
from projections.timeline import TimelineEntry, entry_of
from service.app import command_database
from service.settings import Settings

CELL_WIDTH = 58
NO_CALL = "(no call)"
_FINAL = ("confirmed", "rejected", "failed", "failed, retryable", "cancelled", "rescheduled")


def add_audit_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `audit call <id>` and `audit booking <uid>`."""
    parser = commands.add_parser("audit", help="print what happened to a call or a booking")
    which = parser.add_subparsers(dest="audit_of", required=True)
    call = which.add_parser("call", help="every event of one call")
    call.add_argument("call_id")
    booking = which.add_parser("booking", help="every event about one Cal.com booking uid")
    booking.add_argument("uid")
    for sub in (call, booking):
        sub.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_audit_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `audit`; exit status 1 when nothing was found or there is no database."""
    try:
        return asyncio.run(audit_command(args, settings))
    except DatabaseUnavailable as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1


async def audit_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the timeline `args` asks for; 1 when there is nothing to show."""
    async with command_database(settings) as (pool, store):
        if args.audit_of == "call":
            subject = args.call_id
            events = await _all_of_call(pool, subject)
            render = call_json if args.json else render_call
        else:
            subject = args.uid
            events = await audit.booking_story(pool, store, subject)
            render = booking_json if args.json else render_booking
        print(render(subject, events))
    return 0 if events else 1


async def _all_of_call(pool: asyncpg.Pool, call_id: str) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    page = audit.EventPage([], "0")
    while page.next is not None:
        after = Cursor.parse(page.next)
        page = await audit.call_timeline(pool, call_id, after=after, limit=audit.MAX_LIMIT)
        events.extend(page.events)
    return events


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def render_call(subject: str, events: Sequence[RecordedEvent]) -> str:
    """A call's timeline as a table: time, event, outcome, guard, reason, note."""
    if not events:
        return f"call {subject}: no events"
    header = ("TIME", "EVENT", "OUTCOME", "GUARD", "REASON", "NOTE")
    rows = [header] + [
        (_time(e.at), e.event, e.outcome, e.guard, e.reason, e.note) for e in map(entry_of, events)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [f"call {subject}: {len(events)} events", ""]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _cell(entry: TimelineEntry) -> str:
    text = f"{entry.event}: {entry.outcome}"
    if entry.reason:
        text = f"{entry.event}: {entry.guard}/{entry.reason}".replace(": /", ": ")
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def summaries(entries: Sequence[TimelineEntry]) -> dict[str, str]:
    """Each call's last outcome, e.g. {"688": "rejected by freshness (layer 1): stale_booking"}."""
    found: dict[str, str] = {}
    for entry in entries:
        call = entry.call_id or NO_CALL
        if entry.outcome in _FINAL:
            by = f" by {entry.guard}" if entry.guard else ""
            why = f": {entry.reason}" if entry.reason else ""
            found[call] = f"{entry.outcome}{by}{why}"
        else:
            found.setdefault(call, "no outcome yet")
    return found


def render_booking(subject: str, events: Sequence[RecordedEvent]) -> str:
    """A booking's history with one column per call, and each call's outcome below."""
    if not events:
        return f"Cal.com booking {subject}: no events"
    entries = [entry_of(e) for e in events]
    calls = list(dict.fromkeys(e.call_id or NO_CALL for e in entries))
    lines = [f"Cal.com booking {subject}: {len(calls)} call(s): {', '.join(calls)}", ""]
    lines.append(" | ".join(["TIME".ljust(20), *(f"call {c}".ljust(CELL_WIDTH) for c in calls)]))
    lines.append("-+-".join(["-" * 20, *("-" * CELL_WIDTH for _ in calls)]))
    for entry in entries:
        cells = [
            (_cell(entry) if (entry.call_id or NO_CALL) == call else "").ljust(CELL_WIDTH)
            for call in calls
        ]
        lines.append(" | ".join([_time(entry.at).ljust(20), *cells]).rstrip())
    lines.append("")
    lines.extend(f"call {call}: {outcome}" for call, outcome in summaries(entries).items())
    return "\n".join(lines)


def call_json(subject: str, events: Sequence[RecordedEvent]) -> str:
    """`audit call --json`."""
    body = {"call_id": subject, "events": [audit.event_json(e) for e in events]}
    return json.dumps(body, indent=2)


def booking_json(subject: str, events: Sequence[RecordedEvent]) -> str:
    """`audit booking --json`: the events and each call's outcome."""
    body = {
        "booking_uid": subject,
        "calls": summaries([entry_of(e) for e in events]),
        "events": [audit.event_json(e) for e in events],
    }
    return json.dumps(body, indent=2)
