"""`booking-guard serve` and `booking-guard simulate-calcom`: the service and the simulator."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aiohttp import web

from events.errors import DatabaseUnavailable
from service.app import create_app
from service.settings import Settings


def add_serve_commands(commands: Any) -> None:
    """`serve` and `simulate-calcom`, on the console script's subcommands."""
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
        "--rate-limit",
        type=int,
        default=120,
        metavar="N",
        help="requests a minute per API key, as Cal.com enforces them: the one over it is a 429 "
        "and blocks the key for 60 s (120; 0: off)",
    )
    simulate.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[:ARG][@OPERATION]",
        help="a fault for the next matching request, repeatable, consumed in order: 500, 502, "
        "503, 429[:retry-after-s], 409, delay:<ms>, timeout[:s], timeout_after_write[:s], drop, "
        "drop_after_write; OPERATION: create, find, get, cancel, reschedule, event_type, slots",
    )


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """`serve`: the HTTP service until SIGTERM or Ctrl-C."""
    try:
        web.run_app(
            create_app(settings),
            host=args.host or settings.host,
            port=args.port if args.port is not None else settings.port,
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


def run_simulate(args: argparse.Namespace) -> int:
    """`simulate-calcom`: the Cal.com simulator alone."""
    from service.calcom.simulator.server import run_simulator

    return run_simulator(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        faults=args.fault,
        rate_limit=args.rate_limit,
    )
