"""The `booking-guard` console script."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web
from pydantic import ValidationError

from events.database import stop_embedded
from events.errors import DatabaseUnavailable
from service.app import create_app
from service.audit_cli import add_audit_command, run_audit_command
from service.logs import configure_logging
from service.replay_cli import add_replay_commands, run_replay_command
from service.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(prog="booking-guard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (BOOKING_GUARD_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (BOOKING_GUARD_PORT, 8080)")

    simulate = commands.add_parser("simulate-calcom", help="run the Cal.com simulator")
    simulate.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    simulate.add_argument("--port", type=int, default=8090, help="port to listen on (8090)")
    simulate.add_argument(
        "--latency-ms", type=int, default=0, help="delay added to every Cal.com answer (0)"
    )
    simulate.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:ARG][@OPERATION]",
        help="a fault for the next matching request, repeatable, consumed in order: 500, 502, "
        "503, 429[:retry-after-s], 409, delay:<ms>, timeout[:s], timeout_after_write[:s], drop, "
        "drop_after_write; OPERATION: create, find, get, cancel, reschedule",
    )

    demo = commands.add_parser("demo", help="replay the incident against a running service")
    demo.add_argument("--url", default="http://127.0.0.1:8080", help="the service's origin")
    demo.add_argument(
        "--gap-seconds",
        type=float,
        default=0.0,
        help="wait between the two calls; above BOOKING_GUARD_FRESHNESS_MAX_AGE_SECONDS the "
        "freshness layer fires too (default 0: call identity alone refuses call 688)",
    )
    demo.add_argument("--token", help="bearer token, when BOOKING_GUARD_API_TOKENS is set")

    add_replay_commands(commands)
    add_audit_command(commands)

    db = commands.add_parser("db", help="the embedded PostgreSQL (when DATABASE_URL is unset)")
    db.add_argument("action", choices=["stop"], help="stop: shut the embedded server down")

    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"booking-guard: invalid settings:\n{e}", file=sys.stderr)
        return 2
    configure_logging(settings)

    if args.command == "serve":
        return _serve(settings, host=args.host, port=args.port)
    elif args.command == "simulate-calcom":
        from service.calcom.simulator import run_simulator

        return run_simulator(
            host=args.host, port=args.port, latency_ms=args.latency_ms, faults=args.fault
        )
    elif args.command == "demo":
        from service import demo as demo_command

        return demo_command.main(args.url, gap_seconds=args.gap_seconds, token=args.token)
    elif args.command in ("replay", "projections"):
        return run_replay_command(args, settings)
    elif args.command == "audit":
        return run_audit_command(args, settings)
    elif args.command == "db":
        return _stop_embedded(settings)
    parser.error(f"unknown command {args.command}")
    return 2


def _stop_embedded(settings: Settings) -> int:
    if settings.database_url:
        print("booking-guard: DATABASE_URL is set; there is no embedded server to stop")
        return 0
    stopped = stop_embedded(settings.data_dir)
    print(f"{'stopped' if stopped else 'no server running in'} {settings.data_dir}")
    return 0


def _serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    try:
        web.run_app(
            create_app(settings),
            host=host or settings.host,
            port=port if port is not None else settings.port,
            print=lambda text: print(text, flush=True),
            # On SIGTERM: stop listening, let requests in flight finish for this long (a Cal.com
            # call may take several retries), then close. Our middleware logs each request.
            shutdown_timeout=settings.shutdown_timeout_seconds,
            access_log=None,
        )
    except DatabaseUnavailable as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
