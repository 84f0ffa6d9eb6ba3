"""Where each projection has got to: the `projection_checkpoints` row and its state.

A checkpoint is the pair (transaction id, position) of the last event applied, never a position
alone (see events/reads.py, "the transaction horizon"). It moves only in the transaction that
writes the projection's rows, so a crash can neither apply an event twice nor skip one.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from events.store import START, Connection, Cursor

RUNNING = "running"
FAILED = "failed"

_ENSURE = "INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"

# FOR UPDATE: two runners that both believe they hold the advisory lock (a lock connection that
# died mid-batch) still take turns here, and each reads the checkpoint the other committed.
_CLAIM = """
SELECT transaction_id, position, state, error FROM projection_checkpoints
 WHERE name = $1
   FOR UPDATE
"""

_READ = "SELECT transaction_id, position, state, error FROM projection_checkpoints WHERE name = $1"

_ADVANCE = """
UPDATE projection_checkpoints
   SET transaction_id = $2::xid8, position = $3, updated_at = now()
 WHERE name = $1
"""

_FAIL = """
UPDATE projection_checkpoints SET state = 'failed', error = $2, updated_at = now()
 WHERE name = $1
"""

_RESUME = """
UPDATE projection_checkpoints SET state = 'running', error = NULL, updated_at = now()
 WHERE name = $1 AND state = 'failed'
"""

_RESET = """
INSERT INTO projection_checkpoints (name, transaction_id, position)
VALUES ($1, $2::xid8, $3)
    ON CONFLICT (name) DO UPDATE
   SET transaction_id = excluded.transaction_id, position = excluded.position,
       state = 'running', error = NULL, updated_at = now()
"""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A projection's stored place in the log and whether it is running or failed."""

    cursor: Cursor
    state: str
    error: str | None


NOT_STARTED = Checkpoint(START, RUNNING, None)


def _checkpoint(row: asyncpg.Record | None) -> Checkpoint:
    if row is None:
        return NOT_STARTED
    return Checkpoint(Cursor(row["transaction_id"], row["position"]), row["state"], row["error"])


async def ensure(executor: Connection | asyncpg.Pool, name: str) -> None:
    """Create the projection's checkpoint at the start of the log if it has none."""
    await executor.execute(_ENSURE, name)


async def claim(connection: Connection, name: str) -> Checkpoint:
    """Read and row-lock the checkpoint, inside the caller's transaction."""
    return _checkpoint(await connection.fetchrow(_CLAIM, name))


async def read(executor: Connection | asyncpg.Pool, name: str) -> Checkpoint:
    """The stored checkpoint; the start of the log when there is none yet."""
    return _checkpoint(await executor.fetchrow(_READ, name))


async def advance(connection: Connection, name: str, cursor: Cursor) -> None:
    """Move the checkpoint, inside the transaction that wrote the projection's rows."""
    await connection.execute(_ADVANCE, name, cursor.transaction_id, cursor.position)


async def mark_failed(executor: Connection | asyncpg.Pool, name: str, error: str) -> None:
    """Stop the projection where it is, with the error for whoever looks."""
    await executor.execute(_FAIL, name, error)


async def resume(executor: Connection | asyncpg.Pool, name: str) -> bool:
    """Let a failed projection retry from its checkpoint; False when it was not failed."""
    status: str = await executor.execute(_RESUME, name)
    return status == "UPDATE 1"


async def reset(connection: Connection, name: str, cursor: Cursor) -> None:
    """Put the checkpoint at `cursor` and mark it running (after a rebuild swapped its table)."""
    await connection.execute(_RESET, name, cursor.transaction_id, cursor.position)
