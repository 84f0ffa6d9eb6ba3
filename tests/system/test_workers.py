"""`serve --workers 2`: two processes serve one port (SO_REUSEPORT), each booking on its own."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import asyncpg
import psutil
import pytest

from service.calcom.simulator.server import CalcomSimulator
from tests.conftest import wait_until
from tests.e2e.served import body, future_slot
from tests.system.processes import Services

pytestmark = pytest.mark.slow

ATTEMPTS = 40


def listening_on(process: psutil.Process, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port
        for c in process.net_connections(kind="tcp")
    )


async def test_two_workers_serve_one_port(
    services: Services,
    simulator: tuple[CalcomSimulator, str],
    db: asyncpg.Pool,
) -> None:
    served = await services.start("--workers", "2")
    parent = psutil.Process(served.pid)
    # Its children: the workers, and multiprocessing's resource tracker (spawn starts one).
    children = parent.children()
    workers = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
    try:
        assert len(workers) == 2, workers

        # Both workers hold a listening socket of their own on the one port (the first may
        # have answered /health before the second was up); the parent none.
        async def both_listen() -> bool:
            return all(listening_on(w, served.port) for w in workers)

        await wait_until(both_listen, timeout=20, interval=0.1)
        assert not listening_on(parent, served.port)

        async def post(n: int) -> int:
            # A connection per request: the kernel picks a worker per connection.
            connector = aiohttp.TCPConnector(force_close=True)
            async with (
                aiohttp.ClientSession(connector=connector) as session,
                session.post(
                    f"{served.url}/v1/booking-attempts",
                    json=body(
                        f"call_w{n:03d}",
                        future_slot(days=3 + n // 10, hour=8 + n % 10),
                        email=f"worker-caller-{n}@example.com",
                    ),
                ) as response,
            ):
                return response.status

        statuses = await asyncio.gather(*(post(n) for n in range(ATTEMPTS)))
        assert statuses == [201] * ATTEMPTS
        # Each worker books as itself (the key's holder is host:pid): both took connections.
        holders = {row["holder"] for row in await db.fetch("SELECT holder FROM idempotency_keys")}
        assert {h.rsplit(":", 1)[1] for h in holders} == {str(w.pid) for w in workers}
        assert await db.fetchval("SELECT count(*) FROM appointments") == ATTEMPTS

        # SIGTERM to the parent reaches every worker; all exit cleanly.
        served.send(signal.SIGTERM)
        assert await served.wait(30) == 0
        for worker in workers:
            assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    finally:
        for child in children:
            if child.is_running():
                child.kill()
