"""`serve --workers 2`: two processes serve one port (SO_REUSEPORT), each booking on its own."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from service.calcom.simulator.server import CalcomSimulator
from tests.conftest import wait_until
from tests.e2e.served import body, future_slot
from tests.system.processes import Services

pytestmark = pytest.mark.slow

ATTEMPTS = 40


_PROC = Path("/proc")
_LISTEN = "0A"  # the TCP state in /proc/net/tcp


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc; Linux only, as the system tests are)."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()


def listening_on(pid: int, port: int) -> bool:
    """Whether one of `pid`'s own file descriptors is a TCP socket listening on `port`."""
    inodes = set()
    for fd in (_PROC / str(pid) / "fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    for table in ("tcp", "tcp6"):
        for line in (_PROC / str(pid) / "net" / table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                return True
    return False


def running(pid: int) -> bool:
    try:
        state = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_two_workers_serve_one_port(
    services: Services,
    simulator: tuple[CalcomSimulator, str],
    db: asyncpg.Pool,
) -> None:
    served = await services.start("--workers", "2")
    # Its children: the workers, and multiprocessing's resource tracker (spawn starts one).
    kids = children(served.pid)
    workers = [pid for pid in kids if "resource_tracker" not in cmdline(pid)]
    try:
        assert len(workers) == 2, workers

        # Both workers hold a listening socket of their own on the one port (the first may
        # have answered /health before the second was up); the parent none.
        async def both_listen() -> bool:
            return all(listening_on(w, served.port) for w in workers)

        await wait_until(both_listen, timeout=20, interval=0.1)
        assert not listening_on(served.pid, served.port)

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
        assert {h.rsplit(":", 1)[1] for h in holders} == {str(pid) for pid in workers}
        assert await db.fetchval("SELECT count(*) FROM appointments") == ATTEMPTS

        # SIGTERM to the parent reaches every worker; all exit cleanly.
        served.send(signal.SIGTERM)
        assert await served.wait(30) == 0
        assert not any(running(pid) for pid in workers)
    finally:
        for pid in kids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
