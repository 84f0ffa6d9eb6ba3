-- 0002: the booking's life after the answer (DESIGN.md §10).
--
-- An appointment now follows its Cal.com booking through every state: pending (awaiting the
-- host), booked, cancelled, declined; a reschedule moves it to the new uid. What Cal.com said of
-- each booking uid is kept in booking_states, folded with a join that ignores order (a status
-- only climbs pending < accepted < cancelled < rejected; the other fields keep the least or the
-- greatest value), so webhooks arriving in any order, twice, or before the confirmation they
-- concern end in the same row (STYLE.md 22). An appointment remembers the uid it was confirmed
-- with (origin_uid) and is settled from the chain of reschedules that starts there.
--
-- The edge picks HTTP statuses now (service/api/outcomes.py): the key's stored status goes.

ALTER TABLE appointments ADD COLUMN IF NOT EXISTS origin_uid text;
UPDATE appointments SET origin_uid = booking_uid WHERE origin_uid IS NULL;
ALTER TABLE appointments ALTER COLUMN origin_uid SET NOT NULL;
ALTER TABLE appointments DROP CONSTRAINT IF EXISTS appointments_status_check;
ALTER TABLE appointments ADD CONSTRAINT appointments_status_check
    CHECK (status IN ('pending', 'booked', 'cancelled', 'declined'));
CREATE INDEX IF NOT EXISTS appointments_origin_uid ON appointments (origin_uid);

CREATE TABLE IF NOT EXISTS booking_states (
    booking_uid     text        PRIMARY KEY,
    status          text        NOT NULL
                    CHECK (status IN ('pending', 'accepted', 'cancelled', 'rejected')),
    rescheduled_to  text,
    start_at        timestamptz,
    end_at          timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS booking_states_rescheduled_to ON booking_states (rescheduled_to)
    WHERE rescheduled_to IS NOT NULL;

INSERT INTO booking_states (booking_uid, status, start_at, end_at, updated_at)
SELECT booking_uid, CASE status WHEN 'cancelled' THEN 'cancelled' ELSE 'accepted' END,
       start_at, end_at, updated_at
  FROM appointments
ON CONFLICT (booking_uid) DO NOTHING;

ALTER TABLE idempotency_keys DROP COLUMN IF EXISTS response_status;
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS reconcile_after timestamptz;
CREATE INDEX IF NOT EXISTS idempotency_keys_reconcile ON idempotency_keys (reconcile_after)
    WHERE reconcile_after IS NOT NULL;

-- How far a booking status has got: a status only climbs (pending < accepted < cancelled <
-- rejected), so folding facts with the greater one ignores the order they arrive in.
CREATE OR REPLACE FUNCTION bg_status_rank(p_status text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_position(ARRAY['pending', 'accepted', 'cancelled', 'rejected'], p_status)
$$;

-- One fact Cal.com stated about a booking uid, folded into booking_states, then every
-- appointment whose chain of reschedules passes through the uid settled again. The fold is a
-- join (the greater status, the least uid and times, the latest update), so any order of the
-- same facts ends in the same rows, live and in replay. p_states and p_appointments name the
-- live tables or replay's twins (never input).
CREATE OR REPLACE FUNCTION bg_booking_fact(
    p_states text,
    p_appointments text,
    p_uid text,
    p_status text,
    p_rescheduled_to text,
    p_start timestamptz,
    p_end timestamptz,
    p_at timestamptz
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($sql$
        INSERT INTO %1$I AS s (booking_uid, status, rescheduled_to, start_at, end_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (booking_uid) DO UPDATE SET
            status = CASE WHEN bg_status_rank(EXCLUDED.status) > bg_status_rank(s.status)
                          THEN EXCLUDED.status ELSE s.status END,
            rescheduled_to = LEAST(s.rescheduled_to, EXCLUDED.rescheduled_to),
            start_at = LEAST(s.start_at, EXCLUDED.start_at),
            end_at = LEAST(s.end_at, EXCLUDED.end_at),
            updated_at = GREATEST(s.updated_at, EXCLUDED.updated_at)
    $sql$, p_states) USING p_uid, p_status, p_rescheduled_to, p_start, p_end, p_at;
    PERFORM bg_settle_appointments(p_states, p_appointments, p_uid);
END
$$;

-- Settle the appointments whose chain passes through p_uid: each takes the last uid of the
-- chain that starts at the uid it was confirmed with, that uid's status and times, and the
-- latest update along the chain. A second appointment reaching one uid violates
-- appointments_booking_uid_key, as a second confirmation would.
CREATE OR REPLACE FUNCTION bg_settle_appointments(
    p_states text,
    p_appointments text,
    p_uid text
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_appointment record;
BEGIN
    FOR v_appointment IN EXECUTE format($sql$
        WITH RECURSIVE back(uid, depth) AS (
            SELECT $1::text, 0
            UNION
            SELECT s.booking_uid, back.depth + 1
              FROM %1$I s JOIN back ON s.rescheduled_to = back.uid
             WHERE back.depth < 64
        )
        SELECT a.appointment_id, a.origin_uid FROM %2$I a
         WHERE a.origin_uid IN (SELECT uid FROM back)
    $sql$, p_states, p_appointments) USING p_uid
    LOOP
        EXECUTE format($sql$
            WITH RECURSIVE chain(uid, depth) AS (
                SELECT $1::text, 0
                UNION ALL
                SELECT s.rescheduled_to, chain.depth + 1
                  FROM %1$I s JOIN chain ON s.booking_uid = chain.uid
                 WHERE s.rescheduled_to IS NOT NULL AND chain.depth < 64
            ), last AS (
                SELECT uid FROM chain ORDER BY depth DESC LIMIT 1
            )
            UPDATE %2$I a
               SET booking_uid = s.booking_uid,
                   status = CASE s.status WHEN 'pending' THEN 'pending'
                                          WHEN 'accepted' THEN 'booked'
                                          WHEN 'cancelled' THEN 'cancelled'
                                          ELSE 'declined' END,
                   start_at = COALESCE(s.start_at, a.start_at),
                   end_at = COALESCE(s.end_at, a.end_at),
                   updated_at = GREATEST(a.confirmed_at, (
                       SELECT max(c.updated_at) FROM %1$I c
                        WHERE c.booking_uid IN (SELECT uid FROM chain)))
              FROM %1$I s
             WHERE a.appointment_id = $2 AND s.booking_uid = (SELECT uid FROM last)
        $sql$, p_states, p_appointments) USING v_appointment.origin_uid,
                                               v_appointment.appointment_id;
    END LOOP;
END
$$;

-- A confirmation: the appointment row, then the fact it states (Cal.com holds the booking as
-- accepted, or pending the host) — which settles it at once if facts about its uid came first.
CREATE OR REPLACE FUNCTION bg_confirm_appointment(
    p_states text,
    p_appointments text,
    p_appointment_id uuid,
    p_booking_uid text,
    p_booking_id bigint,
    p_call_id text,
    p_attempt_id uuid,
    p_event_type_id bigint,
    p_start timestamptz,
    p_end timestamptz,
    p_attendee_name text,
    p_attendee_email text,
    p_status text,
    p_confirmed_at timestamptz
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format($sql$
        INSERT INTO %1$I (appointment_id, booking_uid, booking_id, call_id, attempt_id,
                          event_type_id, start_at, end_at, attendee_name, attendee_email,
                          status, confirmed_at, updated_at, origin_uid)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $2)
    $sql$, p_appointments)
    USING p_appointment_id, p_booking_uid, p_booking_id, p_call_id, p_attempt_id,
          p_event_type_id, p_start, p_end, p_attendee_name, p_attendee_email, p_status,
          p_confirmed_at;
    PERFORM bg_booking_fact(
        p_states, p_appointments, p_booking_uid,
        CASE p_status WHEN 'pending' THEN 'pending' ELSE 'accepted' END,
        NULL, p_start, p_end, p_confirmed_at);
END
$$;
