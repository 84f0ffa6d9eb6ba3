"""`booking-guard audit call <id>` and `audit booking <uid>`: timelines a person can read.

`audit booking` puts each call in a column of its own, so an incident (call 687 confirmed a
booking; Cal.com handed the same booking to call 688, which was rejected) reads side by side.
Tables are drawn with rich: colours on a terminal, plain text in a file or a pipe. `--json`
prints the events as the HTTP audit endpoints do.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
from collections.abc import Sequence
from typing import TextIO

import asyncpg
from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from events.errors import DatabaseUnavailable
from events.models import RecordedEvent
from events.store import Cursor
from projections import audit
from projections.timeline import TimelineEntry, entry_of, utc_ms
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


async def audit_command(
    args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None
) -> int:
    """Print the timeline `args` asks for; 1 when there is nothing to show."""
    async with command_database(settings) as (pool, store):
        if args.audit_of == "call":
            subject = args.call_id
            events = await _all_of_call(pool, subject)
            as_json, view = call_json, call_view
        else:
            subject = args.uid
            events = await audit.booking_story(pool, store, subject)
            as_json, view = booking_json, booking_view
        out = out or sys.stdout
        if args.json:
            print(as_json(subject, events), file=out)
        else:
            console_for(out).print(view(subject, events))
    return 0 if events else 1


async def _all_of_call(pool: asyncpg.Pool, call_id: str) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    page = audit.EventPage([], "0")
    while page.next is not None:
        after = Cursor.parse(page.next)
        page = await audit.call_timeline(pool, call_id, after=after, limit=audit.MAX_LIMIT)
        events.extend(page.events)
    return events


# One look for both tables: a rule under the header, no outer box, so that lines stay easy to
# grep and copy into an incident report.
_OUTCOME_STYLES = {"confirmed": "green", "rejected": "bold red", "failed": "red"}
# Wide enough for the booking table of an incident (two calls) without wrapping when the output is
# a file or a pipe, where rich would otherwise assume 80 columns.
PLAIN_WIDTH = 200


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _styled(text: str, outcome: str) -> Text:
    return Text(text, style=_OUTCOME_STYLES.get(outcome.split(",")[0], ""))


def call_view(subject: str, events: Sequence[RecordedEvent]) -> RenderableType:
    """A call's timeline as a table: time, event, outcome, guard, reason, note."""
    if not events:
        return Text(f"call {subject}: no events")
    table = _table("TIME", "EVENT", "OUTCOME", "GUARD", "REASON", "NOTE")
    for entry in map(entry_of, events):
        table.add_row(
            utc_ms(entry.at),
            entry.event,
            _styled(entry.outcome, entry.outcome),
            entry.guard,
            entry.reason,
            Text(entry.note),
        )
    return Group(Text(f"call {subject}: {len(events)} events"), Text(""), table)


def _cell(entry: TimelineEntry) -> Text:
    text = f"{entry.event}: {entry.outcome}"
    if entry.reason:
        text = f"{entry.event}: {entry.guard}/{entry.reason}".replace(": /", ": ")
    return _styled(text, entry.outcome)


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


def booking_view(subject: str, events: Sequence[RecordedEvent]) -> RenderableType:
    """A booking's history with one column per call, and each call's outcome below."""
    if not events:
        return Text(f"Cal.com booking {subject}: no events")
    entries = [entry_of(e) for e in events]
    calls = list(dict.fromkeys(e.call_id or NO_CALL for e in entries))
    table = _table("TIME", *(f"call {call}" for call in calls))
    for column in table.columns[1:]:
        column.max_width = CELL_WIDTH
    for entry in entries:
        own = entry.call_id or NO_CALL
        table.add_row(utc_ms(entry.at), *(_cell(entry) if own == c else "" for c in calls))
    outcomes = [
        _styled(f"call {call}: {outcome}", outcome.split(" ")[0])
        for call, outcome in summaries(entries).items()
    ]
    title = Text(f"Cal.com booking {subject}: {len(calls)} call(s): {', '.join(calls)}")
    return Group(title, Text(""), table, Text(""), *outcomes)


def console_for(out: TextIO) -> Console:
    """Colours and the terminal's width on a terminal; plain text, wide, in a file or a pipe."""
    console = Console(file=out, highlight=False)
    if console.is_terminal:
        return console
    return Console(file=out, highlight=False, width=PLAIN_WIDTH, no_color=True)


def as_text(view: RenderableType) -> str:
    """What a view prints in a file or a pipe, without its trailing spaces."""
    out = io.StringIO()
    console_for(out).print(view)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def render_call(subject: str, events: Sequence[RecordedEvent]) -> str:
    """`call_view` as plain text."""
    return as_text(call_view(subject, events))


def render_booking(subject: str, events: Sequence[RecordedEvent]) -> str:
    """`booking_view` as plain text."""
    return as_text(booking_view(subject, events))


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
