"""The `booking-guard` console script: parse the command line, run one command group."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from events.migrate import MigrationError, SchemaBehind
from service.cli import demo
from service.cli.attempts import add_attempts_command, run_attempts_command
from service.cli.audit import add_audit_command, run_audit_command
from service.cli.check import add_check_command, run_check_command
from service.cli.db import add_db_command, run_db_command
from service.cli.reconcile import add_reconcile_command, run_reconcile_command
from service.cli.replay import add_replay_commands, run_replay_command
from service.cli.retell import add_retell_command, run_retell_command
from service.cli.serve import add_serve_commands, run_serve, run_simulate
from service.ops.logs import configure_logging
from service.ops.version import package_version
from service.settings import Settings, describe_invalid


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(
        prog="booking-guard",
        description="Books appointments in Cal.com exactly once for AI phone agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_commands(commands)
    demo.add_demo_command(commands)
    add_replay_commands(commands)
    add_audit_command(commands)
    add_db_command(commands)
    add_attempts_command(commands)
    add_reconcile_command(commands)
    add_check_command(commands)
    add_retell_command(commands)

    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"booking-guard: invalid settings:\n{describe_invalid(e)}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return _run(parser, args, settings)
    except SchemaBehind as e:
        # Only `serve` with BOOKING_GUARD_AUTO_MIGRATE=true and `db migrate` change the schema.
        why = " (BOOKING_GUARD_AUTO_MIGRATE is false)" if args.command == "serve" else ""
        print(f"booking-guard: {e}; run `booking-guard db migrate`{why}", file=sys.stderr)
        return 1
    except MigrationError as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return run_serve(args, settings)
    elif args.command == "simulate-calcom":
        return run_simulate(args)
    elif args.command == "demo":
        url = args.url or demo.service_url(settings.host, settings.port)
        return demo.main(url, gap_seconds=args.gap_seconds, token=args.token)
    elif args.command in ("replay", "projections"):
        return run_replay_command(args, settings)
    elif args.command == "audit":
        return run_audit_command(args, settings)
    elif args.command == "db":
        return run_db_command(args, settings)
    elif args.command == "attempts":
        return run_attempts_command(args, settings)
    elif args.command == "reconcile":
        return run_reconcile_command(args, settings)
    elif args.command == "check":
        return run_check_command(args, settings)
    elif args.command == "retell":
        return run_retell_command(args, settings)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
