-- 0003: parked attempts (issue 14): recovery counts its tries per idempotency key and, after
-- BOOKING_GUARD_RECOVERY_MAX_TRIES, parks the attempt (AttemptParked) instead of trying again
-- every pass; `booking-guard attempts resume <attempt_id>` clears parked_at and the count.
-- The same change is in schema.sql.
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS recovery_tries integer NOT NULL DEFAULT 0;
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS parked_at timestamptz;
