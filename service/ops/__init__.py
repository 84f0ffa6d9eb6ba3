"""What operators see: structured logs and their redaction, metrics, and the database's status."""
