"""What can stop a projection: a failure of its own, or the database being away for a while."""

from __future__ import annotations

import asyncpg

from events.errors import TRANSIENT_DATABASE_ERRORS

# After these the same batch will succeed later, so the runner pauses and tries again: the
# database being away (the one list, events/errors.py), or a transaction it rolled back in
# favour of another (class 40: deadlock, serialization failure), which is no fault of the
# projection either. Anything else raised while applying a batch is the projection's own.
RETRY_LATER: tuple[type[Exception], ...] = (
    *TRANSIENT_DATABASE_ERRORS,
    asyncpg.TransactionRollbackError,
)


class ProjectionFailed(Exception):
    """The projection stopped on an error; it stays stopped until resumed or replayed."""

    def __init__(self, name: str, error: str | None) -> None:
        super().__init__(f"projection {name!r} has failed: {error}")
        self.name = name
        self.error = error
