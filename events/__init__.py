"""The ledger: event models and the event store over PostgreSQL."""
