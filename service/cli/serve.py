"""`booking-guard serve` and `booking-guard simulate-calcom`: the service and the simulator."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from typing import Any

from aiohttp import web

from events.errors import DatabaseUnavailable
from service.api.telemetry import REQUESTS_IN_FLIGHT
from service.api.wire import GuardedRunner
from service.app import create_app
from service.ops.logs import configure_logging
from service.settings import Settings, anonymous_exposure

log = logging.getLogger(__name__)

# run_app's default: an idle keep-alive connection is closed after this long.
KEEPALIVE_TIMEOUT_SECONDS = 75.0


def add_serve_commands(commands: Any) -> None:
    """`serve` and `simulate-calcom`, on the console script's subcommands."""
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (BOOKING_GUARD_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (BOOKING_GUARD_PORT, 8080)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving the port together (SO_REUSEPORT: the kernel spreads the "
        "connections), each with its own database pool, recovery loop and projector "
        "candidacy; a worker that dies stops the others (1)",
    )

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
        "drop_after_write; OPERATION: create, find, get, cancel, reschedule, event_type, slots, "
        "me",
    )
    simulate.add_argument(
        "--clock-skew-seconds",
        type=float,
        default=0.0,
        metavar="N",
        help="Cal.com's clock (createdAt, ...) runs N seconds from this machine's; negative: "
        "behind (0)",
    )
    simulate.add_argument(
        "--webhook-url", metavar="URL", help="send Cal.com's booking webhooks here (none)"
    )
    simulate.add_argument(
        "--webhook-secret",
        metavar="SECRET",
        help="sign webhooks with this secret (unset: X-Cal-Signature-256: no-secret-provided)",
    )
    simulate.add_argument(
        "--webhook-fault",
        action="append",
        default=[],
        metavar="KIND",
        help="a fault for the next webhook, repeatable, consumed in order: drop, duplicate, "
        "delay:<ms>, reorder (sent after the next one)",
    )


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """`serve`: the HTTP service until SIGTERM or Ctrl-C."""
    # The effective host, --host included: the exposure check must see where we really listen.
    host = args.host or settings.host
    refusal = anonymous_exposure(settings, host)
    if refusal is not None:
        print(f"booking-guard: invalid settings:\n  {refusal}", file=sys.stderr)
        return 2
    port = args.port if args.port is not None else settings.port
    workers = getattr(args, "workers", 1)
    if workers < 1:
        print("booking-guard: --workers must be at least 1", file=sys.stderr)
        return 2
    if workers > 1:
        if port == 0:
            print("booking-guard: --workers needs a fixed --port", file=sys.stderr)
            return 2
        return run_workers(workers, host=host, port=port)
    try:
        serve_app(
            create_app(settings),
            host=host,
            port=port,
            # On SIGTERM: stop listening, let requests in flight finish for this long (a Cal.com
            # call may take several retries), then close.
            shutdown_timeout=settings.shutdown_timeout_seconds,
        )
    except DatabaseUnavailable as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        return 1
    return 0


def run_workers(workers: int, *, host: str, port: int) -> int:
    """`serve --workers N`: N processes, each `serve_app` on the same port with SO_REUSEPORT.

    Spawned, not forked: each worker starts from a clean interpreter (no event loop, pool or
    thread of this process), reads the same settings from the environment and builds its own
    app. This process only supervises: SIGTERM or SIGINT is passed on to every worker (each
    drains its requests as `serve` does); a worker that exits on its own stops the others and
    makes the exit status 1, so a process manager sees the failure and restarts the whole set.
    """
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker, args=(host, port), name=f"booking-guard-worker-{n}", daemon=False
        )
        for n in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.start()
        print(f"booking-guard: {workers} workers on {host}:{port}", flush=True)
        failed = False
        while any(p.exitcode is None for p in processes):
            multiprocessing.connection.wait([p.sentinel for p in processes if p.exitcode is None])
            for process in processes:
                process.join(timeout=0)
            if not stopping and any(p.exitcode is not None for p in processes):
                failed = True
                stop(signal.SIGTERM, None)
        return 1 if failed or any(p.exitcode not in (0, None) for p in processes) else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _worker(host: str, port: int) -> None:
    """One worker of `serve --workers`: its settings, logging and app, on the shared port."""
    settings = Settings()
    configure_logging(settings)
    try:
        serve_app(
            create_app(settings),
            host=host,
            port=port,
            shutdown_timeout=settings.shutdown_timeout_seconds,
            reuse_port=True,
        )
    except DatabaseUnavailable as e:
        print(f"booking-guard: {e}", file=sys.stderr)
        sys.exit(1)


def serve_app(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float,
    reuse_port: bool = False,
) -> None:
    """`web.run_app`, with the GuardedRunner: run_app takes no runner of ours (aiohttp web.py).

    The same shape as run_app: signals raise GracefulExit, which ends the loop; cancelling the
    main task runs the runner's cleanup (stop listening, drain requests, the app's cleanup_ctx).
    """

    async def main() -> None:
        # Our middleware logs each request: no aiohttp access log.
        runner = GuardedRunner(
            app,
            handle_signals=True,
            access_log=None,
            shutdown_timeout=shutdown_timeout,
            keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
            await site.start()
            print(f"======== Running on {site.name} ========\n(Press CTRL+C to quit)", flush=True)
            await asyncio.Event().wait()
        finally:
            # An operator watching a deploy sees that the signal arrived and what it waits for.
            in_flight = app.get(REQUESTS_IN_FLIGHT)
            log.info(
                "shutting down: %d requests in flight",
                0 if in_flight is None else in_flight.count,
            )
            await runner.cleanup()
            log.info("stopped")

    loop = asyncio.new_event_loop()
    main_task = loop.create_task(main())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main_task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main_task.done():
            main_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main_task)
        # Whatever the app left running (run_app's _cancel_tasks does the same).
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run_simulate(args: argparse.Namespace) -> int:
    """`simulate-calcom`: the Cal.com simulator alone."""
    from service.calcom.simulator.server import run_simulator

    return run_simulator(
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        faults=args.fault,
        clock_skew_seconds=args.clock_skew_seconds,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        webhook_faults=args.webhook_fault,
        rate_limit=args.rate_limit,
    )
