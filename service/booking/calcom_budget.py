"""Cal.com's rate limit as one budget per API key, shared by every process on the database.

Cal.com counts every request of a key, whichever process sends it, and blocks the key for 60 s
after the first one over the limit (shared/contracts/README.md). So the budget lives in
PostgreSQL (`calcom_rate_limit`, one row per SHA-256 of the key) and each process leases a batch
of requests from it at a time: the common path spends a local token and adds no round trip; one
request in `batch` leases the next batch in one statement.

The limit starts from BOOKING_GUARD_CALCOM_RATE_LIMIT and follows what Cal.com announces
(`X-RateLimit-Limit-Default`); a 429, or an answer saying nothing remains, blocks the key for
everyone until Cal.com's reset, and a spent budget is refused at once (CalcomRateLimited, with
the seconds until the reset) instead of sending a doomed request.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import datetime, timedelta

import asyncpg

from service.booking.clock import Clock
from service.calcom.rate_limit import Announcement, CalcomRateLimited

WINDOW = timedelta(seconds=60)
BLOCK = timedelta(seconds=60)
DEFAULT_BATCH = 10
# A request leases again when a lease came back after its window ended; this many times at most.
LEASES_PER_TAKE = 3

# Lease up to $5 requests of the key's current window: a new row, a window that ended (start a
# new one), or what the window has left; none while the key is blocked. SET expressions read
# the row as it was, so `last_grant` records this lease for RETURNING.
_LEASE = """
INSERT INTO calcom_rate_limit AS r
    (key_hash, request_limit, window_ends_at, used, last_grant)
VALUES ($1, $2::integer, $3::timestamptz + $4::interval, LEAST($5::integer, $2), LEAST($5, $2))
ON CONFLICT (key_hash) DO UPDATE SET
    request_limit = EXCLUDED.request_limit,
    last_grant = CASE
        WHEN r.blocked_until > $3 THEN 0
        ELSE GREATEST(0, LEAST($5, EXCLUDED.request_limit
            - CASE WHEN r.window_ends_at <= $3 THEN 0 ELSE r.used END))
    END,
    used = CASE
        WHEN r.blocked_until > $3 THEN r.used
        ELSE CASE WHEN r.window_ends_at <= $3 THEN 0 ELSE r.used END
            + GREATEST(0, LEAST($5, EXCLUDED.request_limit
                - CASE WHEN r.window_ends_at <= $3 THEN 0 ELSE r.used END))
    END,
    window_ends_at = CASE
        WHEN r.window_ends_at <= $3 AND NOT coalesce(r.blocked_until > $3, false)
        THEN EXCLUDED.window_ends_at
        ELSE r.window_ends_at
    END
RETURNING last_grant, window_ends_at, blocked_until
"""

# Cal.com refused or spent the key until $3: nobody sends before then.
_BLOCK = """
INSERT INTO calcom_rate_limit AS r
    (key_hash, request_limit, window_ends_at, used, blocked_until)
VALUES ($1, $2::integer, $3::timestamptz, $2, $3)
ON CONFLICT (key_hash) DO UPDATE SET
    blocked_until = GREATEST(coalesce(r.blocked_until, $3), $3),
    -- Cal.com's reset ends the block and the window alike: a new window starts after it.
    window_ends_at = GREATEST(coalesce(r.blocked_until, $3), $3),
    used = r.request_limit
"""


def key_hash(api_key: str) -> str:
    """The row's key: a SHA-256 of the API key, so the database never holds the key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class SharedCalcomBudget:
    """A CalcomBudget leased in batches from the `calcom_rate_limit` row of one API key."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        api_key: str,
        limit: int,
        clock: Clock,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if limit < 1 or batch < 1:
            raise ValueError(f"limit and batch must be positive, got {limit} and {batch}")
        self._pool = pool
        self._hash = key_hash(api_key)
        self._limit = limit
        self._clock = clock
        self._batch = batch
        self._tokens = 0
        self._tokens_until: datetime | None = None
        self._lease_lock = asyncio.Lock()

    @property
    def limit(self) -> int:
        """Requests per window: the setting, until Cal.com announces its own."""
        return self._limit

    async def take(self) -> None:
        """Spend one request of the key's budget, or raise CalcomRateLimited at once."""
        if self._spend():
            return
        async with self._lease_lock:  # one lease at a time per process
            if self._spend():
                return
            for _ in range(LEASES_PER_TAKE):
                await self._lease()
                if self._spend():
                    return
                # The window the grant was counted in ended while the lease was in flight (sent
                # in its last moments; a slow round trip, or a wait for another process's lease
                # under load). Sending now would put a request Cal.com counts in the new window
                # that the new window's count lacks: one over the limit per process at every
                # boundary. The grant lapses unused (under the limit, never over) and the next
                # lease is counted in the window the request goes out in.
            raise CalcomRateLimited(
                f"{LEASES_PER_TAKE} leases of the Cal.com rate limit each came back after their"
                " window ended (is this clock far behind the database's?); not sent, retry in 1 s",
                status=429,
                code="rate_limited",
                retry_after=1,
            )

    def _spend(self) -> bool:
        if self._tokens > 0 and self._tokens_until is not None:
            if self._clock.now() < self._tokens_until:
                self._tokens -= 1
                return True
            self._tokens = 0  # leased for a window that has ended
        return False

    async def _lease(self) -> None:
        """Lease a batch of the key's current window as this process's tokens (at least one),
        or raise CalcomRateLimited."""
        now = self._clock.now()
        row = await self._pool.fetchrow(
            _LEASE, self._hash, self._limit, now, WINDOW, min(self._batch, self._limit)
        )
        assert row is not None
        granted: int = row["last_grant"]
        if granted > 0:
            self._tokens = granted
            self._tokens_until = row["window_ends_at"]
            return
        blocked_until = row["blocked_until"]
        until = (
            blocked_until
            if blocked_until is not None and blocked_until > now
            else row["window_ends_at"]
        )
        wait = max(1, math.ceil((until - now).total_seconds()))
        raise CalcomRateLimited(
            f"the Cal.com rate limit of {self._limit} requests a minute is spent for this key; "
            f"not sent, retry in {wait} s",
            status=429,
            code="rate_limited",
            retry_after=wait,
        )

    async def observe(self, announcement: Announcement) -> None:
        """Follow Cal.com's announced limit; a 429 or nothing remaining blocks the key."""
        if announcement.limit is not None and announcement.limit > 0:
            self._limit = announcement.limit
        spent = announcement.status == 429 or announcement.remaining == 0
        if not spent:
            return
        reset = announcement.reset_seconds
        until = self._clock.now() + (BLOCK if reset is None else timedelta(seconds=reset))
        self._tokens = 0
        await self._pool.execute(_BLOCK, self._hash, self._limit, until)
