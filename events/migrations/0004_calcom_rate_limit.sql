-- Cal.com's rate limit, shared by every booking-guard process on this database: one row per
-- Cal.com API key (by a SHA-256 of it, never the key), leased to processes in batches
-- (service/booking/calcom_budget.py). The same DDL ends schema.sql.
CREATE TABLE IF NOT EXISTS calcom_rate_limit (
    key_hash        text PRIMARY KEY,
    request_limit   integer     NOT NULL CHECK (request_limit > 0),
    window_ends_at  timestamptz NOT NULL,
    used            integer     NOT NULL CHECK (used >= 0),
    last_grant      integer     NOT NULL DEFAULT 0,
    blocked_until   timestamptz
);
