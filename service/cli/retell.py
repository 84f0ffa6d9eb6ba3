"""`booking-guard retell functions`: the custom functions to paste into a Retell agent."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

import orjson

from service.api.retell_functions import function_definitions
from service.settings import Settings


def add_retell_command(commands: Any) -> None:
    """`retell functions`, on the console script's subcommands."""
    retell = commands.add_parser("retell", help="what to configure in Retell")
    actions = retell.add_subparsers(dest="retell_action", required=True)
    functions = actions.add_parser(
        "functions",
        help="print book_appointment and check_availability as Retell's custom-function form "
        "wants them (name, description, parameters as JSON Schema)",
    )
    functions.add_argument(
        "--agent",
        metavar="AGENT_ID",
        help="the `service` parameter lists this agent's services (BOOKING_GUARD_RETELL_AGENTS)",
    )


def run_retell_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the functions' definitions as JSON; 2 for an agent that is not configured."""
    return print_functions(settings, agent=args.agent, out=sys.stdout, err=sys.stderr)


def print_functions(settings: Settings, *, agent: str | None, out: TextIO, err: TextIO) -> int:
    """The definitions for `agent` (or for any agent) on `out`; problems on `err`."""
    agents = settings.retell_agents
    if agent is not None and agent not in agents:
        known = ", ".join(sorted(agents)) or "none"
        print(
            f"booking-guard: agent {agent!r} is not in BOOKING_GUARD_RETELL_AGENTS "
            f"(configured: {known})",
            file=err,
        )
        return 2
    services = list(agents[agent]) if agent is not None else []
    if agents and agent is None:
        print(
            "booking-guard: agents are configured: `service` takes a service's name; pass "
            "--agent AGENT_ID to list that agent's services",
            file=err,
        )
    definitions = function_definitions(by_service=bool(agents), services=services)
    out.write(orjson.dumps(definitions, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
