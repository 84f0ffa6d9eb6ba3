"""One built-in simulator for every `serve` process of a data directory.

Each process without CALCOM_API_KEY used to start a simulator of its own, so two processes on
one database kept two calendars and could both book one slot. Now the first process serves its
simulator on a loopback port and records it beside the data directory
(`<data_dir>-simulator.json`: host, port, pid); the others find it there and book against it.
A lock file (`flock`, which the kernel releases when its holder dies) makes look-up and start
one step, so processes starting together agree on one. A record whose process is gone, or whose
port does not answer as a simulator, is stale: the next process to start takes over. A process
still using a simulator whose owner has exited fails its Cal.com calls until it is restarted.

Beside the data directory, not in it: an embedded PostgreSQL cluster may not exist there yet,
and `initdb` refuses a directory that holds anything.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from service.calcom.simulator.server import CalcomSimulator

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# A simulator answers this on loopback in milliseconds; a port that does not is someone else's.
PROBE_PATH = "/_simulator/event-types"
PROBE_TIMEOUT_SECONDS = 2.0
LOCK_TIMEOUT_SECONDS = 15.0
LOCK_RETRY_SECONDS = 0.01


def record_path(data_dir: Path) -> Path:
    """Where the shared simulator of `data_dir` is recorded."""
    data_dir = data_dir.expanduser().resolve()
    return data_dir.with_name(f"{data_dir.name}-simulator.json")


def _lock_path(data_dir: Path) -> Path:
    return record_path(data_dir).with_suffix(".lock")


@asynccontextmanager
async def _holding(path: Path) -> AsyncIterator[None]:
    """The lock on `path`; another process holds it for a few milliseconds at most."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Non-blocking tries rather than a blocking flock in a thread: a cancelled start must
        # not leave a thread behind that takes the lock later and never lets it go.
        async with asyncio.timeout(LOCK_TIMEOUT_SECONDS):
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(LOCK_RETRY_SECONDS)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read(path: Path) -> dict[str, object] | None:
    try:
        record = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _write(path: Path, record: dict[str, object]) -> None:
    # Readers never see half a file: write aside, then rename over.
    partial = path.with_suffix(".json.partial")
    partial.write_bytes(orjson.dumps(record))
    partial.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and the port probe decides
    return True


async def _answers(url: str) -> bool:
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{url}{PROBE_PATH}") as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _live_url(record: dict[str, object] | None) -> str | None:
    """The recorded simulator's origin when its process lives and its port answers."""
    if record is None:
        return None
    pid, host, port = record.get("pid"), record.get("host"), record.get("port")
    if not (isinstance(pid, int) and isinstance(host, str) and isinstance(port, int)):
        return None
    url = f"http://{host}:{port}"
    if pid == os.getpid() or not _alive(pid) or not await _answers(url):
        return None
    return url


@asynccontextmanager
async def shared_simulator(data_dir: Path) -> AsyncIterator[str]:
    """The origin of `data_dir`'s simulator: another process's, or one served here until exit."""
    path, lock = record_path(data_dir), _lock_path(data_dir)
    async with _holding(lock):
        found = await _live_url(_read(path))
        if found is None:
            runner = web.AppRunner(CalcomSimulator().app, handle_signals=False)
            await runner.setup()
            try:
                await web.TCPSite(runner, HOST, 0).start()
                port = runner.addresses[0][1]
                _write(path, {"host": HOST, "port": port, "pid": os.getpid()})
            except BaseException:
                await runner.cleanup()
                raise
    if found is not None:
        log.info("using the Cal.com simulator of process recorded in %s at %s", path, found)
        yield found
        return
    url = f"http://{HOST}:{port}"
    log.info("serving the shared Cal.com simulator at %s (recorded in %s)", url, path)
    try:
        yield url
    finally:
        async with _holding(lock):
            record = _read(path)
            if record is not None and record.get("pid") == os.getpid():
                path.unlink(missing_ok=True)
        await runner.cleanup()
