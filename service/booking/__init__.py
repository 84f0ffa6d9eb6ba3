"""The exactly-once booking workflow: attempts, guards, outcomes, ledger writes, recovery.

No web framework and no HTTP statuses here (import-linter keeps it so): the workflow returns
outcomes and the edge (the `api` room) decides what each one is on the wire.
"""
