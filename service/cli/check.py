"""`booking-guard check`: is this configuration ready to book real appointments?

Each check is a row: what was checked, ok / warn / FAIL / skip, what was found, and what to do
about it. Any FAIL exits 1. Run it with the settings `serve` will have, before going live
(docs/go-live.md): it reads the database and Cal.com and changes neither.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TextIO

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from events.calls import retell_agents_seen
from events.database import create_pool
from events.errors import DatabaseUnavailable
from events.migrate import MigrationError, status
from service.app import resolve_dsn
from service.calcom.account import AccountSource
from service.calcom.event_types import CalcomEventType, EventTypeSource
from service.calcom.port import CalcomAuthFailed, CalcomClient, CalcomError
from service.calcom.wiring import open_calcom
from service.settings import Settings

Status = Literal["ok", "warn", "FAIL", "skip"]
# Agents that called this recently count as in service; older ones may be retired.
AGENTS_WINDOW = timedelta(days=30)
DATABASE_TIMEOUT_SECONDS = 5.0
# The checks that read the database, after the connection itself.
DATABASE_CHECKS = ("schema", "Retell agents")
NEW_KEY = (
    "create an API key in Cal.com (Settings → Developer → API Keys) as the event types' owner "
    "or a team admin, and set CALCOM_API_KEY to it"
)


@dataclass(frozen=True, slots=True)
class Row:
    """One check's verdict and, when it is not ok, what to do."""

    check: str
    status: Status
    found: str
    todo: str = ""


def add_check_command(commands: Any) -> None:
    """`check`, on the console script's subcommands."""
    check = commands.add_parser(
        "check", help="check the database, Cal.com, event types and secrets before going live"
    )
    check.add_argument(
        "--event-type",
        type=int,
        action="append",
        default=[],
        metavar="ID",
        help="also check this Cal.com event type, repeatable (besides those of "
        "BOOKING_GUARD_RETELL_AGENTS)",
    )
    check.add_argument("--json", action="store_true", help="print the rows as JSON")


def run_check_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run every check, print the table; 1 when any check failed."""
    rows = asyncio.run(run_checks(settings, event_types=args.event_type))
    print_rows(rows, sys.stdout, as_json=args.json)
    return exit_status(rows)


def exit_status(rows: Iterable[Row]) -> int:
    """1 when any check failed; warnings and skipped checks alone do not fail."""
    return 1 if any(row.status == "FAIL" for row in rows) else 0


async def run_checks(settings: Settings, *, event_types: Sequence[int] = ()) -> list[Row]:
    """Every row, in the order a person fixes things: database, Cal.com, secrets, agents."""
    rows = await database_rows(settings)
    rows += await calcom_rows(settings, event_types)
    rows += secret_rows(settings)
    return rows


async def database_rows(settings: Settings) -> list[Row]:
    """PostgreSQL reachable, the schema current, the Retell agents the ledger has seen."""
    where = "DATABASE_URL" if settings.database_url else f"embedded in {settings.data_dir}"
    try:
        dsn = await resolve_dsn(settings)
        pool = await create_pool(dsn, min_size=1, max_size=1, timeout=DATABASE_TIMEOUT_SECONDS)
    except DatabaseUnavailable as e:
        todo = "check DATABASE_URL and that the server accepts connections from here"
        skipped = [Row(name, "skip", "not checked: no database") for name in DATABASE_CHECKS]
        return [Row("PostgreSQL", "FAIL", str(e), todo), *skipped]
    try:
        async with pool.acquire() as conn:
            rows = [Row("PostgreSQL", "ok", f"connected ({where})")]
            try:
                found = await status(conn)
            except MigrationError as e:
                return [*rows, Row("schema", "FAIL", str(e), "deploy the release that matches")]
            if found.pending:
                names = ", ".join(m.label for m in found.pending)
                behind = f"version {found.current} of {found.head}; pending: {names}"
                todo = "run `booking-guard db migrate` (serve does it at start unless "
                todo += "BOOKING_GUARD_AUTO_MIGRATE=false)"
                agents = Row("Retell agents", "skip", "not checked: the schema is behind")
                return [*rows, Row("schema", "FAIL", behind, todo), agents]
            schema = Row("schema", "ok", f"version {found.current}, current")
            if found.unknown:
                newer = ", ".join(row.label for row in found.unknown)
                schema = Row("schema", "warn", f"a newer release migrated it ({newer})")
            seen = await retell_agents_seen(conn, since=datetime.now(UTC) - AGENTS_WINDOW)
    finally:
        await pool.close()
    return [*rows, schema, agents_row(settings, seen)]


def agents_row(settings: Settings, seen: Iterable[str]) -> Row:
    """Retell agents that called in the last 30 days without a configuration."""
    configured = set(settings.retell_agents)
    missing = sorted(set(seen) - configured)
    name = "Retell agents"
    if not missing:
        return Row(name, "ok", "every agent seen in the last 30 days is configured")
    listed = ", ".join(missing)
    todo = "add them to BOOKING_GUARD_RETELL_AGENTS (then `booking-guard retell functions "
    todo += "--agent ID`), or retire them in Retell"
    if configured:
        # Once any agent is configured, calls from the others are refused (fail closed).
        return Row(name, "FAIL", f"not configured, their calls are refused: {listed}", todo)
    return Row(name, "warn", f"calling without configuration: {listed}", todo)


async def calcom_rows(settings: Settings, extra_event_types: Sequence[int]) -> list[Row]:
    """Whose key, each configured event type and its kind, and whether the key lists bookings."""
    key = settings.calcom_api_key
    wanted = configured_event_types(settings, extra_event_types)
    async with open_calcom(
        api_key=key.get_secret_value() if key is not None else None,
        base_url=settings.calcom_base_url,
    ) as client:
        first = await account_row(client, settings)
        if first.status == "FAIL":
            why = "not checked: Cal.com did not answer GET /v2/me"
            skipped = [Row(f"event type {i}", "skip", why) for i in wanted]
            return [first, *skipped, Row("listing bookings", "skip", why)]
        rows = [first]
        if not wanted:
            todo = "set BOOKING_GUARD_RETELL_AGENTS, or pass --event-type ID"
            rows.append(Row("event types", "warn", "none configured", todo))
        for event_type_id, users in wanted.items():
            rows.append(await event_type_row(client, event_type_id, users))
        rows.append(await listing_row(client))
    return rows


def configured_event_types(settings: Settings, extra: Sequence[int]) -> dict[int, list[str]]:
    """Each event type to check, with who books it (`agent_x: Beratung`, `--event-type`)."""
    wanted: dict[int, list[str]] = {}
    for agent_id, services in settings.retell_agents.items():
        for name, service in services.items():
            wanted.setdefault(service.event_type_id, []).append(f"{agent_id}: {name}")
    for event_type_id in extra:
        wanted.setdefault(event_type_id, []).append("--event-type")
    return dict(sorted(wanted.items()))


async def account_row(client: CalcomClient, settings: Settings) -> Row:
    """`GET /v2/me`: Cal.com answers the key, and whose it is."""
    simulator = settings.calcom_api_key is None
    where = "the built-in simulator, not Cal.com" if simulator else settings.calcom_base_url
    if not isinstance(client, AccountSource):
        return Row("Cal.com", "FAIL", f"{where}: this client cannot say whose key it is")
    try:
        account = await client.get_me()
    except CalcomAuthFailed as e:
        return Row("Cal.com", "FAIL", f"{where} refused the key: {e.message}", NEW_KEY)
    except CalcomError as e:
        todo = "check CALCOM_BASE_URL (the origin without /v2) and the network to it"
        return Row("Cal.com", "FAIL", f"{where} did not answer: {e.message}", todo)
    found = f"{where}, key of {account.describe()}"
    if simulator:
        todo = "set CALCOM_API_KEY (and CALCOM_BASE_URL for a self-hosted Cal.com) to book"
        return Row("Cal.com", "warn", found, todo + " in Cal.com; nothing real is booked now")
    return Row("Cal.com", "ok", found)


async def event_type_row(client: CalcomClient, event_type_id: int, users: list[str]) -> Row:
    """The event type exists for this key, and booking-guard can guard its kind."""
    name = f"event type {event_type_id}"
    used = f" (used by {', '.join(users)})"
    if not isinstance(client, EventTypeSource):
        return Row(name, "skip", "this client cannot read event types")
    try:
        event_type = await client.get_event_type(event_type_id)
    except CalcomError as e:
        todo = "check the id (Cal.com → Event Types → the type: the number in its address) "
        todo += "and that this key's user owns it or administers its team"
        return Row(name, "FAIL", f"Cal.com: {e.message}{used}", todo)
    kind = event_kind(event_type)
    fields = event_type.required_fields
    asks = f"; requires answers to {', '.join(fields)}" if fields else ""
    if event_type.unsupported_kind is not None:
        todo = "book this service with an event type without seats or recurrence"
        return Row(name, "FAIL", f"{kind}: booking-guard refuses it{used}", todo)
    return Row(name, "ok", f"{kind}{asks}{used}")


def event_kind(event_type: CalcomEventType) -> str:
    """In words: plain, round-robin, requires confirmation, seated, recurring (with the slug)."""
    kinds = []
    if event_type.seated:
        kinds.append("seated")
    if event_type.recurring:
        kinds.append("recurring")
    if event_type.scheduling_type is not None:
        kinds.append({"roundRobin": "round-robin"}.get(event_type.scheduling_type, "team"))
    if event_type.requires_confirmation:
        kinds.append("requires confirmation")
    slug = f" '{event_type.slug}'" if event_type.slug else ""
    return f"{', '.join(kinds) or 'plain'}{slug}"


async def listing_row(client: CalcomClient) -> Row:
    """The key can list bookings: recovery and reconciliation find ours that way."""
    now = datetime.now(UTC)
    try:
        await client.list_bookings(created_after=now - timedelta(minutes=1), created_before=now)
    except CalcomError as e:
        todo = "recovery and reconciliation need GET /v2/bookings: " + NEW_KEY
        return Row("listing bookings", "FAIL", f"Cal.com: {e.message}", todo)
    # Cal.com lists the key's user's bookings (a team admin's: the team's); see docs/go-live.md.
    return Row("listing bookings", "ok", "the key lists bookings")


def secret_rows(settings: Settings) -> list[Row]:
    """Secrets and the agents' configuration: unset turns a feature off (a warning)."""
    unset: list[tuple[str, bool, str, str]] = [
        (
            "RETELL_API_KEY",
            settings.retell_api_key is not None,
            "the Retell endpoint answers 503: no function call can book",
            "set it to the Retell API key with the webhook badge",
        ),
        (
            "CALCOM_WEBHOOK_SECRET",
            settings.calcom_webhook_secret is not None,
            "the Cal.com webhook answers 503: cancellations, reschedules and the host's "
            "confirmations in Cal.com go unrecorded",
            "add the webhook in Cal.com with a secret and set the same secret here",
        ),
        (
            "BOOKING_GUARD_RETELL_AGENTS",
            bool(settings.retell_agents),
            "the functions book the event_type_id the LLM passes",
            "configure each agent's services (docs/go-live.md)",
        ),
        (
            "BOOKING_GUARD_API_TOKENS",
            bool(settings.api_tokens),
            "the booking API is open to anyone who reaches it",
            "set long random tokens and give them to the producers",
        ),
    ]
    return [
        Row(name, "ok", "set") if is_set else Row(name, "warn", f"unset: {effect}", todo)
        for name, is_set, effect, todo in unset
    ]


_STYLES = {"ok": "green", "warn": "yellow", "FAIL": "bold red", "skip": "dim"}


def print_rows(rows: Sequence[Row], out: TextIO, *, as_json: bool = False) -> None:
    """The rows as a table (or JSON), then one line saying whether it may go live."""
    if as_json:
        out.write(orjson.dumps([asdict(row) for row in rows], option=orjson.OPT_INDENT_2).decode())
        out.write("\n")
        return
    # Off a terminal (a log, a pipe) rich would wrap at 80 columns; a wide table reads better.
    console = Console(file=out, width=None if out.isatty() else 160)
    table = Table(title="booking-guard check")
    for column in ("check", "status", "found", "what to do"):
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not markup: a message may hold brackets ("[redacted]").
        status_cell = Text(row.status, style=_STYLES[row.status])
        table.add_row(Text(row.check), status_cell, Text(row.found), Text(row.todo))
    console.print(table)
    failed = sum(row.status == "FAIL" for row in rows)
    warned = sum(row.status == "warn" for row in rows)
    verdict = "not ready to go live" if failed else "ready" if not warned else "ready; see warnings"
    console.print(Text(f"{failed} failed, {warned} warnings: {verdict}"))
