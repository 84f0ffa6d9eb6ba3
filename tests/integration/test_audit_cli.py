"""`booking-guard audit` and `replay` output, against a real PostgreSQL."""

from __future__ import annotations

import argparse
import io
import json

import asyncpg
import pytest
from rich.console import Console

from events.store import EventStore
from projections import audit, catalog
from projections.rebuild import Phase, Progress, rebuild
from service.cli.audit import audit_command as run_audit
from service.cli.audit import booking_json, booking_view, render_booking, render_call
from service.cli.replay import ProgressPrinter, replay_command
from service.settings import Settings
from tests.integration.test_audit import record_incident


@pytest.fixture
def store(db: asyncpg.Pool) -> EventStore:
    return EventStore(db)


async def test_booking_shows_the_confirming_and_the_rejected_call_side_by_side(
    db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    text = render_booking("uid-687", await audit.booking_story(db, store, "uid-687"))
    lines = text.splitlines()
    assert lines[0] == "Cal.com booking uid-687: 2 call(s): 687, 688"
    header = lines[2]
    assert header.index("call 687") < header.index("call 688")
    column_688 = header.index("call 688")
    confirmed = next(line for line in lines if "BookingConfirmed" in line)
    rejected = next(line for line in lines if "BookingRejected" in line)
    assert confirmed.index("BookingConfirmed") < column_688  # in call 687's column
    assert rejected.index("BookingRejected") >= column_688  # in call 688's column
    assert "call_identity (layer 2)/call_id_mismatch" in rejected
    assert lines[-2:] == [
        "call 687: confirmed",
        "call 688: rejected by call_identity (layer 2): call_id_mismatch",
    ]
    # The requests carry no booking uid; the story shows them for each call all the same.
    assert sum("BookingRequested" in line for line in lines) == 2


async def test_call_timeline_prints_time_event_outcome_guard_and_reason(
    db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    page = await audit.call_timeline(db, "688")
    text = render_call("688", page.events)
    lines = text.splitlines()
    assert lines[0] == "call 688: 3 events"
    assert lines[2].split() == ["TIME", "EVENT", "OUTCOME", "GUARD", "REASON", "NOTE"]
    assert set(lines[3]) == {"─"}  # one rule under the header, no box around the table
    assert lines[4].split()[:3] == ["2025-03-01", "09:45:00.000Z", "BookingRequested"]
    assert "uid uid-687 created 2025-03-01 09:10:00.000Z by call 687" in lines[5]
    rejected = ["rejected", "call_identity", "(layer", "2)", "call_id_mismatch"]
    assert lines[6].split()[3:8] == rejected
    assert lines[6].endswith("booking call id 687")  # the guard's detail in words, not a repr


async def test_tables_are_coloured_on_a_terminal_and_plain_in_a_file(
    db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    events = await audit.booking_story(db, store, "uid-687")
    terminal = Console(record=True, force_terminal=True, width=160, color_system="truecolor")
    terminal.print(booking_view("uid-687", events))
    coloured = terminal.export_text(styles=True, clear=False)
    assert "\x1b[1;31mBookingRejected: call_identity (layer 2)/call_id_mismatch" in coloured
    assert "\x1b[32mBookingConfirmed: confirmed" in coloured
    assert "\x1b[" not in render_booking("uid-687", events)


async def test_json_output_is_the_events_and_each_calls_outcome(
    db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    body = json.loads(booking_json("uid-687", await audit.booking_story(db, store, "uid-687")))
    assert body["calls"] == {
        "687": "confirmed",
        "688": "rejected by call_identity (layer 2): call_id_mismatch",
    }
    assert len(body["events"]) == 6


async def test_audit_command_reads_the_database_and_says_when_nothing_is_found(
    db: asyncpg.Pool, store: EventStore, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await record_incident(store, db)
    settings = Settings(database_url=database_url)
    args = argparse.Namespace(audit_of="call", call_id="687", json=True)
    assert await run_audit(args, settings) == 0
    assert json.loads(capsys.readouterr().out)["call_id"] == "687"
    args = argparse.Namespace(audit_of="booking", uid="no-such-uid", json=False)
    assert await run_audit(args, settings) == 1
    assert capsys.readouterr().out.strip() == "Cal.com booking no-such-uid: no events"


async def test_replay_command_rebuilds_everything_and_reports_its_rate(
    db: asyncpg.Pool, store: EventStore, database_url: str
) -> None:
    await record_incident(store, db)
    out = io.StringIO()
    assert await replay_command(Settings(database_url=database_url), [], 2, out=out) == 0
    lines = out.getvalue().splitlines()
    # Rebuilt at once, so the two projections' lines may interleave; each in its own order.
    assert len(lines) == 4
    for name in ("appointments", "rejections"):
        own = [line for line in lines if line.startswith(f"{name}: ")]
        assert own[0].startswith(f"{name}: 1/1 events")
        assert own[1].startswith(f"{name}: rebuilt from 1 events")
    assert await db.fetchval("SELECT count(*) FROM rejections") == 1


async def test_rebuild_announces_each_phase_in_order_around_the_fills_progress(
    db: asyncpg.Pool, store: EventStore
) -> None:
    await record_incident(store, db)
    heard: list[Phase | int] = []
    result = await rebuild(
        db,
        catalog.all_projections()["rejections"],
        batch_size=1,
        on_phase=heard.append,
        on_progress=lambda progress: heard.append(progress.done),
    )
    assert result.events == 1
    # The fill's progress, and only its, falls between FILLING and INDEXING; the final report
    # (exact count) follows the swap, as before phases existed.
    assert heard == [Phase.COUNTING, Phase.FILLING, 1, Phase.INDEXING, Phase.SWAPPING, 1]


async def test_replay_on_a_terminal_shows_bars_naming_every_phase(
    db: asyncpg.Pool, store: EventStore, database_url: str
) -> None:
    await record_incident(store, db)
    out = io.StringIO()
    settings = Settings(database_url=database_url)
    assert await replay_command(settings, [], 2, out=out, terminal=True) == 0
    shown = out.getvalue()
    assert "\x1b[" in shown  # drawn as a terminal is, not as plain lines
    for name in ("appointments", "rejections"):
        for phase in Phase:
            assert f"{name}: {phase}" in shown, (name, phase)
        assert f"{name}: swapped in" in shown
        assert f"{name}: rebuilt from 1 events in" in shown
    assert await db.fetchval("SELECT count(*) FROM rejections") == 1


def test_progress_rewrites_one_line_on_a_terminal_and_prints_lines_otherwise() -> None:
    steps = [Progress("appointments", done, 300, elapsed) for done, elapsed in [(100, 1.0)]]
    steps += [Progress("appointments", 200, 300, 2.0), Progress("appointments", 300, 300, 3.0)]
    tty = io.StringIO()
    printer = ProgressPrinter(tty, tty=True)
    for step in steps:
        printer(step)
    assert tty.getvalue().count("\r") == 3
    assert tty.getvalue().endswith("\n")
    assert "100/300 events  100 events/s  ETA 2s" in tty.getvalue()
    plain = io.StringIO()
    printer = ProgressPrinter(plain, tty=False, every=1.5)
    for step in steps:
        printer(step)
    assert plain.getvalue().splitlines() == [
        "appointments: 100/300 events  100 events/s  ETA 2s",
        "appointments: 300/300 events  100 events/s  done",
    ]
