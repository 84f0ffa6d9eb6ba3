"""Read models built from the ledger by projectors."""
