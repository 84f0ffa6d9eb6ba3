"""KeyedLocks tells whether a slot's lock was released since the claim read its appointment."""

from __future__ import annotations

from service.booking import slot_locks
from service.booking.slot_locks import KeyedLocks


async def test_a_release_after_the_mark_is_seen_and_one_before_is_not() -> None:
    locks = KeyedLocks()
    async with locks.hold("a"):
        pass
    mark = locks.mark()
    assert not locks.released_since("a", mark)
    assert not locks.released_since("b", mark)
    async with locks.hold("a"):
        pass
    assert locks.released_since("a", mark)
    assert not locks.released_since("b", mark)
    assert len(locks) == 0


async def test_a_forgotten_release_counts_as_maybe(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(slot_locks, "REMEMBERED_RELEASES", 2)
    locks = KeyedLocks()
    mark = locks.mark()
    for key in ("a", "b", "c"):
        async with locks.hold(key):
            pass
    # "a" was released after the mark and then forgotten: unsure, so yes.
    assert locks.released_since("a", mark)
    assert not locks.released_since("z", locks.mark())
