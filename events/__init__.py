"""The ledger: event models and the event store over PostgreSQL."""

# Every event module registers its types on import; importing them here means any reader of the
# log (the service, the CLI, replay) can decode every type, whichever module it started from.
from events import booking, calcom, calls  # noqa: F401
