"""Run pgbench with a custom script: PostgreSQL's own client, the ceiling for a statement."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Mapping

from bench.harness import Context

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)$", re.MULTILINE)
_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD"}


async def pgbench_tps(
    ctx: Context, script: str, *, clients: int, variables: Mapping[str, str]
) -> float:
    """Transactions per second of `script` run by `clients` connections for ctx.seconds.

    Variables are passed with -D and, in prepared mode, sent as parameters, as asyncpg does.
    """
    env = os.environ | {var: ctx.libpq[key] for key, var in _ENV.items() if key in ctx.libpq}
    with tempfile.NamedTemporaryFile("w", suffix=".sql", prefix="bench-") as file:
        file.write(script)
        file.flush()
        args = [
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={min(clients, os.cpu_count() or 1)}",
            f"--time={max(1, round(ctx.seconds))}",
            f"--file={file.name}",
        ]
        for name, value in variables.items():
            args.append(f"--define={name}={value}")
        process = await asyncio.create_subprocess_exec(
            str(ctx.pgbench),
            *args,
            ctx.libpq["dbname"],
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
    out, err = stdout.decode(), stderr.decode()
    match = _TPS.search(out)
    if process.returncode != 0 or match is None or "aborted" in err:
        raise RuntimeError(f"pgbench failed ({process.returncode}): {err.strip() or out.strip()}")
    return float(match.group(1))
