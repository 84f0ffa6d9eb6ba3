"""Locks by key for one process: one call's attempts for one slot take turns.

Two idempotency keys of one call for one slot, at once, must end with one booking and two
answers naming it (DESIGN.md §4, the call's own appointment first). In one process the second
waits here for the first and then finds its appointment; across processes the database decides
(Cal.com's taken-slot answer, layers 3 and 4, then the call's appointment is looked up again).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

# How many keys' last releases are remembered; older ones count as "maybe since" (see below).
REMEMBERED_RELEASES = 10_000


class KeyedLocks:
    """An asyncio lock per key, kept only while someone holds or waits for it.

    It also tells whether a key's lock was released since a `mark()`: the claim statement reads
    the call's appointment before the lock is taken, and that reading is still the truth only
    if no other attempt for the slot finished in between (`released_since`).
    """

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}
        self._seq = 0
        self._released: OrderedDict[Hashable, int] = OrderedDict()
        # The newest release forgotten: a mark older than it cannot be answered "no".
        self._forgotten = 0

    def mark(self) -> int:
        """A point in this process's sequence of releases."""
        return self._seq

    def released_since(self, key: Hashable, mark: int) -> bool:
        """Whether `key`'s lock may have been released after `mark` (True when unsure)."""
        seq = self._released.get(key)
        if seq is not None:
            return seq > mark
        return self._forgotten > mark

    def _note_release(self, key: Hashable) -> None:
        self._seq += 1
        self._released[key] = self._seq
        self._released.move_to_end(key)
        while len(self._released) > REMEMBERED_RELEASES:
            _, seq = self._released.popitem(last=False)
            self._forgotten = max(self._forgotten, seq)

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        """Hold the lock of `key` for the block."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                try:
                    yield
                finally:
                    self._note_release(key)
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
