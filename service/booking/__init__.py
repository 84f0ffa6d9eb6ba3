"""The exactly-once booking workflow: attempts, guards, outcomes, ledger writes, recovery.

No aiohttp and no HTTP statuses here (import-linter keeps it so): the workflow returns outcomes
and `service/api/` decides what each one is on the wire.
"""
