"""Real `booking-guard serve` processes for the system tests: started, probed, signalled, reaped."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp

from service.settings import ENV_FILE_VARIABLE
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT = 20.0
# Settings of the developer's shell must not leak into the processes under test.
_SCRUBBED = ("DATABASE_URL", "CALCOM_API_KEY", "CALCOM_BASE_URL", "BOOKING_GUARD_")


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """One `python -m service.cli.main serve` child with its own port and log file."""

    port: int
    log_path: Path
    process: asyncio.subprocess.Process
    log_file: IO[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """What the process wrote so far (JSON log lines and aiohttp's banner)."""
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        if self.process.returncode is None:
            self.process.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        """Wait for the exit; its return code (negative: the signal that ended it)."""
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    async def stop(self) -> None:
        """SIGKILL if still running, then reap; always closes the log file."""
        try:
            if self.process.returncode is None:
                self.process.kill()
                await self.wait(10)
        finally:
            self.log_file.close()


class Services:
    """Starts service processes sharing one environment; `close()` kills whatever still runs."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self._log_dir = log_dir
        self._env = env
        self._started: list[ServiceProcess] = []

    async def start(self, *args: str, **settings: Any) -> ServiceProcess:
        """Start one process with extra settings (`BOOKING_GUARD_RECOVERY_GRACE_SECONDS=1`) and
        `serve` arguments (`--workers`, `2`), and wait until it serves /health."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        env[ENV_FILE_VARIABLE] = ""  # a developer's .env in ROOT is no setting of the test's
        env.update(self._env)
        env.update({k: str(v) for k, v in settings.items()})
        log_path = self._log_dir / f"service-{len(self._started)}-{port}.log"
        log_file = log_path.open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *args,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        service = ServiceProcess(port, log_path, process, log_file)
        self._started.append(service)
        await self._wait_healthy(service)
        return service

    async def run_command(self, *args: str, timeout: float = 120.0) -> tuple[int, str]:
        """Run `booking-guard <args>` (`audit call x`) with the services' settings to its end;
        its exit status and what it wrote to stdout and stderr."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        env[ENV_FILE_VARIABLE] = ""  # a developer's .env in ROOT is no setting of the test's
        env.update(self._env)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "service.cli.main",
            *args,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                out, _ = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace")

    async def _wait_healthy(self, service: ServiceProcess) -> None:
        async with aiohttp.ClientSession() as session:

            async def healthy() -> bool:
                if service.process.returncode is not None:
                    raise AssertionError(
                        f"service exited with {service.process.returncode}:\n{service.log()}"
                    )
                try:
                    async with session.get(f"{service.url}/health") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            try:
                await wait_until(healthy, timeout=START_TIMEOUT, interval=0.05)
            except TimeoutError:
                raise AssertionError(f"service did not start:\n{service.log()}") from None

    async def close(self) -> None:
        for service in self._started:
            await service.stop()
