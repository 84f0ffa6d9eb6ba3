"""What can stop a projection: a failure of its own, or the database being away for a while."""

from __future__ import annotations

import asyncpg

from events.errors import DatabaseUnavailable

# Errors of the database being away or busy, after which the same work will succeed later.
# Anything else raised while applying a batch is the projection's own fault.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
    DatabaseUnavailable,
)


class ProjectionFailed(Exception):
    """The projection stopped on an error; it stays stopped until resumed or replayed."""

    def __init__(self, name: str, error: str | None) -> None:
        super().__init__(f"projection {name!r} has failed: {error}")
        self.name = name
        self.error = error
