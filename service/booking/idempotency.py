"""Idempotency keys: claim one before an attempt, store the answer on it after (DESIGN.md §9).

A key is `in_flight` while an attempt holds it, `finished` once the answer is final, and
`retryable` after a failure a retry may fix: a retry with the same key then opens a new attempt
instead of replaying a 503 for ever. The common path (a new key with its intent, the answer
with the outcome) is one statement each, in service/booking/phase_writes.py; this module holds
the rest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events.store import Connection

# A new key, in flight; nothing (no row returned) when the key exists. phase_writes embeds it.
INSERT_KEY = """
INSERT INTO idempotency_keys (key, fingerprint, attempt_id, status, holder, locked_at,
                              first_called_at, created_at, attempt_ids)
VALUES ($1, $2, $3, 'in_flight', $4, $5, $5, $5, ARRAY[$3::uuid])
ON CONFLICT (key) DO NOTHING
RETURNING key
"""

_SELECT_FOR_UPDATE = """
SELECT key, fingerprint, attempt_id, status, response_body, locked_at, first_called_at,
       attempt_ids
  FROM idempotency_keys WHERE key = $1 FOR UPDATE
"""

_FINISHED_ANSWER = """
SELECT response_body FROM idempotency_keys
 WHERE key = $1 AND fingerprint = $2 AND status = 'finished' AND response_body IS NOT NULL
"""

_TAKE_OVER = "UPDATE idempotency_keys SET holder = $2, locked_at = $3 WHERE key = $1"

# Recovery's take-over counts as one try (service/booking/parking.py parks after too many).
_TAKE_OVER_FOR_RECOVERY = """
UPDATE idempotency_keys
   SET holder = $2, locked_at = $3, recovery_tries = recovery_tries + 1
 WHERE key = $1
"""

_RETRY = """
UPDATE idempotency_keys
   SET attempt_id = $2, status = 'in_flight', holder = $3, locked_at = $4,
       attempt_ids = attempt_ids || $2::uuid, response_body = NULL, finished_at = NULL
 WHERE key = $1
"""

_STALE = """
SELECT key FROM idempotency_keys
 WHERE status = 'in_flight' AND locked_at < $1 AND parked_at IS NULL
 ORDER BY locked_at
 LIMIT $2
 FOR UPDATE SKIP LOCKED
"""

_REAP = "DELETE FROM idempotency_keys WHERE status <> 'in_flight' AND finished_at < $1"
# Keys whose last attempt may have written to Cal.com, due for a look; taken for `$2` (a lease:
# a process that dies mid-look leaves them to the next one).
_TAKE_DUE = """
UPDATE idempotency_keys SET reconcile_after = $2
 WHERE key IN (SELECT key FROM idempotency_keys
                WHERE status = 'retryable' AND reconcile_after <= $1
                ORDER BY reconcile_after LIMIT $3
                  FOR UPDATE SKIP LOCKED)
RETURNING key, attempt_ids, attempt_id
"""
_IN_FLIGHT = """
SELECT EXISTS (SELECT 1 FROM idempotency_keys
                WHERE status = 'in_flight' AND (attempt_id = $1 OR $1 = ANY (attempt_ids)))
"""
_RECONCILED = """
UPDATE idempotency_keys SET reconcile_after = NULL
 WHERE key = $1 AND status = 'retryable' AND reconcile_after = $2
"""


@dataclass(frozen=True, slots=True)
class KeyRow:
    key: str
    fingerprint: str
    attempt_id: uuid.UUID
    status: str
    response_body: dict[str, Any] | None
    locked_at: datetime
    first_called_at: datetime
    attempt_ids: tuple[uuid.UUID, ...]


async def insert(
    connection: Connection,
    key: str,
    *,
    fingerprint: str,
    attempt_id: uuid.UUID,
    holder: str,
    now: datetime,
) -> bool:
    """Claim a new key; False when it already exists."""
    inserted = await connection.fetchval(INSERT_KEY, key, fingerprint, attempt_id, holder, now)
    return inserted is not None


async def lock(connection: Connection, key: str) -> KeyRow:
    """The key's row, locked until the caller's transaction ends."""
    row = await connection.fetchrow(_SELECT_FOR_UPDATE, key)
    if row is None:
        raise LookupError(f"idempotency key {key!r} vanished")
    return KeyRow(
        key=row["key"],
        fingerprint=row["fingerprint"],
        attempt_id=row["attempt_id"],
        status=row["status"],
        response_body=row["response_body"],
        locked_at=row["locked_at"],
        first_called_at=row["first_called_at"],
        attempt_ids=tuple(row["attempt_ids"]),
    )


async def finished_answer(
    connection: Connection, key: str, *, fingerprint: str
) -> dict[str, Any] | None:
    """The stored answer of a finished key for this very request, without locking it."""
    body = await connection.fetchval(_FINISHED_ANSWER, key, fingerprint)
    return body if isinstance(body, dict) else None


async def take_over(connection: Connection, key: str, *, holder: str, now: datetime) -> None:
    """Become the holder of an in-flight key whose holder stopped answering."""
    await connection.execute(_TAKE_OVER, key, holder, now)


async def take_over_for_recovery(
    connection: Connection, key: str, *, holder: str, now: datetime
) -> None:
    """`take_over` by the recovery loop, counting one recovery try on the key."""
    await connection.execute(_TAKE_OVER_FOR_RECOVERY, key, holder, now)


async def open_retry(
    connection: Connection, key: str, *, attempt_id: uuid.UUID, holder: str, now: datetime
) -> None:
    """Point a key whose last attempt failed retryably at a new attempt."""
    await connection.execute(_RETRY, key, attempt_id, holder, now)


async def stale_keys(connection: Connection, *, older_than: datetime, limit: int) -> list[str]:
    """Unparked in-flight keys untouched since `older_than`, locked (SKIP LOCKED)."""
    rows = await connection.fetch(_STALE, older_than, limit)
    return [row["key"] for row in rows]


@dataclass(frozen=True, slots=True)
class DueKey:
    """A key whose attempts may have left a booking in Cal.com that nobody was told of."""

    key: str
    attempt_id: uuid.UUID
    attempt_ids: tuple[uuid.UUID, ...]
    lease_until: datetime


async def take_due(
    connection: Connection, *, now: datetime, lease_until: datetime, limit: int
) -> list[DueKey]:
    """Take up to `limit` keys due for reconciliation until `lease_until` (SKIP LOCKED)."""
    rows = await connection.fetch(_TAKE_DUE, now, lease_until, limit)
    return [
        DueKey(row["key"], row["attempt_id"], tuple(row["attempt_ids"]), lease_until)
        for row in rows
    ]


async def reconciled(connection: Connection, due: DueKey) -> None:
    """Take the key off the reconciler's queue (unless a retry or another look took it over)."""
    await connection.execute(_RECONCILED, due.key, due.lease_until)


async def holds_in_flight(connection: Connection, attempt_id: uuid.UUID) -> bool:
    """Whether a key holding this attempt is in flight (its outcome is still to come)."""
    return bool(await connection.fetchval(_IN_FLIGHT, attempt_id))


async def reap(connection: Connection, *, finished_before: datetime) -> int:
    """Delete finished keys older than `finished_before`; the log keeps the history."""
    status = await connection.execute(_REAP, finished_before)
    return int(status.split()[-1])


def is_stale(row: KeyRow, *, now: datetime, grace: timedelta) -> bool:
    """An in-flight key whose holder has had longer than `grace`: presumed dead."""
    return row.locked_at < now - grace
