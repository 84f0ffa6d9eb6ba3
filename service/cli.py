"""The `booking-guard` console script."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web
from pydantic import ValidationError

from events.errors import DatabaseUnavailable
from service.app import create_app
from service.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one subcommand."""
    parser = argparse.ArgumentParser(prog="booking-guard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (BOOKING_GUARD_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (BOOKING_GUARD_PORT, 8080)")

    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"booking-guard: invalid settings:\n{e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    if args.command == "serve":
        return _serve(settings, host=args.host, port=args.port)
    parser.error(f"unknown command {args.command}")
    return 2


def _serve(settings: Settings, *, host: str | None, port: int | None) -> int:
    try:
        web.run_app(
            create_app(settings),
            host=host or settings.host,
            port=port if port is not None else settings.port,
            print=lambda text: print(text, flush=True),
        )
    except DatabaseUnavailable as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
