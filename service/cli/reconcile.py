"""`booking-guard reconcile [--since DURATION] [--dry-run] [--json]`: Cal.com against the ledger.

Every booking Cal.com lists as created in the window is compared with the ledger
(service/booking/reconciler.py): in sync; an orphan (ours, no appointment) cancelled, alerted,
to cancel, or still within its grace; status drift applied (or, in a dry run, found); a booking
made around the guard. `--dry-run` changes nothing, in Cal.com or in the ledger. The exit
status is 0 when nothing differs (or every difference was settled), 1 when a dry run found
something to settle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from service.app import command_reconciler
from service.booking.reconciler import Finding
from service.calcom.port import CalcomClient
from service.settings import Settings

DEFAULT_SINCE = "24h"
_DURATION = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# What a dry run may find that a real run would settle: the exit status says so.
UNSETTLED = frozenset({"orphan_to_cancel", "status_drift", "unguarded", "orphan_alerted"})
SETTLED = frozenset({"orphan_cancelled", "status_drift_applied"})


def add_reconcile_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `reconcile`."""
    parser = commands.add_parser(
        "reconcile", help="compare Cal.com's bookings in a window with the ledger and settle"
    )
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        help="the window's start: 30m, 24h, 7d or an RFC 3339 time (default 24h)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report only; change nothing anywhere"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")


def parse_since(text: str, *, now: datetime) -> datetime:
    """`30m`, `24h`, `7d` before `now`, or an RFC 3339 time with its offset."""
    match = _DURATION.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"--since takes 30m, 24h, 7d or an RFC 3339 time with an offset, got {text!r}"
        )
    return moment


def run_reconcile_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `reconcile`; see the module docstring for the exit status."""
    try:
        since = parse_since(args.since, now=datetime.now(UTC))
    except ValueError as e:
        print(f"booking-guard reconcile: {e}", file=sys.stderr)
        return 2
    return asyncio.run(reconcile(settings, since=since, dry_run=args.dry_run, as_json=args.json))


async def reconcile(
    settings: Settings,
    *,
    since: datetime,
    dry_run: bool,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    calcom: CalcomClient | None = None,
) -> int:
    """Compare, settle unless `dry_run`, print; the exit status. (`calcom`: tests' client.)"""
    if settings.calcom_api_key is None and calcom is None:
        print(
            "booking-guard reconcile: CALCOM_API_KEY is not set; comparing with a fresh "
            "built-in simulator, which holds no bookings",
            file=sys.stderr,
        )
    async with command_reconciler(settings, calcom=calcom) as (reconciler, client):
        bookings = await client.list_bookings(created_after=since)
        findings = await reconciler.reconcile(bookings, dry_run=dry_run)
    out.write(render_json(findings, since=since, dry_run=dry_run) if as_json else render(findings))
    return 1 if dry_run and any(f.kind in UNSETTLED for f in findings) else 0


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    """How many bookings of each kind."""
    return dict(sorted(Counter(f.kind for f in findings).items()))


def render(findings: Sequence[Finding]) -> str:
    """A table a person reads: the differences first, then the counts."""
    lines = []
    header = ("kind", "booking uid", "Cal.com", "appointment", "call", "note")
    rows = [
        (
            f.kind,
            f.booking_uid,
            f.calcom_status or "-",
            f.appointment_status or "-",
            f.call_id or "-",
            f.note,
        )
        for f in findings
        if f.kind != "in_sync"
    ]
    if rows:
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        lines.append("")
    counts = summary(findings)
    lines.append(
        f"{len(findings)} Cal.com bookings: "
        + (", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none in the window")
    )
    return "\n".join(lines) + "\n"


def render_json(findings: Sequence[Finding], *, since: datetime, dry_run: bool) -> str:
    """Every finding and the counts, as JSON."""
    body: dict[str, Any] = {
        "since": since.isoformat(),
        "dry_run": dry_run,
        "counts": summary(findings),
        "drift": sum(1 for f in findings if f.kind in UNSETTLED),
        "findings": [
            {
                "kind": f.kind,
                "booking_uid": f.booking_uid,
                "calcom_status": f.calcom_status,
                "appointment_status": f.appointment_status,
                "attempt_id": None if f.attempt_id is None else str(f.attempt_id),
                "call_id": f.call_id,
                "note": f.note,
            }
            for f in findings
        ],
    }
    return json.dumps(body, indent=2) + "\n"
