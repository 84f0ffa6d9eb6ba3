-- booking-guard schema: the whole current schema, in one file to read (DESIGN.md section 2).
-- Databases are not built from it: they reach it through the numbered migrations in
-- events/migrations/ (events/migrate.py). A schema change is a new migration 000N_name.sql AND
-- the same change here; tests/integration/test_migrations.py fails until both agree.

-- The ledger. Append-only; everything else in this file is derived from it or guards writes to it.
CREATE TABLE IF NOT EXISTS events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction. Subscribers read in (transaction_id, position) order and only
    -- below the oldest running transaction, so an event whose transaction took a lower position
    -- but committed later is never skipped (see events/reads.py, "the transaction horizon").
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    event_id        uuid        NOT NULL,
    type            text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE INDEX IF NOT EXISTS events_transaction_order ON events (transaction_id, position);
CREATE INDEX IF NOT EXISTS events_type_order ON events (type, transaction_id, position);
-- Audit lookups: every booking event carries the call and, once Cal.com answered, the booking uid.
CREATE INDEX IF NOT EXISTS events_call_id ON events ((data ->> 'call_id'), position)
    WHERE data ? 'call_id';
CREATE INDEX IF NOT EXISTS events_booking_uid ON events ((data ->> 'booking_uid'), position)
    WHERE data ? 'booking_uid';

-- Append events with ANY / STREAM_EXISTS, or a batch inside a caller's transaction, to one
-- stream in a single round trip. (A single event at an exact version, and a batch at an exact
-- version on the pool, need no function: events/store.py sends one INSERT.)
-- The unique (stream_id, version) index decides every race: a racing append that took a version
-- first makes an exact expectation fail with the actual version. ANY and STREAM_EXISTS appends
-- to one stream take turns under a per-stream lock, and look again when an exact-version writer
-- took their version (bounded: under REPEATABLE READ the snapshot cannot move, so they fail).
-- p_expected_version: >= 0 exact version (0 = empty), -1 no stream, -2 stream exists, -3 any.
-- Returns the stream's new version, or -1 when the whole batch was already stored as it is.
-- Errors: BG001 wrong expected version (DETAIL = actual version), BG002 an event id is already
-- stored with other content. Raising rolls back whatever part of the batch was inserted.
-- No NOTIFY in here: a NOTIFY holds a cluster-wide lock from pre-commit until the commit is
-- flushed, so every append would commit one after another (bench/README.md measures it). The
-- store wakes subscribers after commit instead.
CREATE OR REPLACE FUNCTION bg_append_events(
    p_stream_id text,
    p_expected_version bigint,
    p_event_ids uuid[],
    p_types text[],
    p_schema_versions integer[],
    p_data jsonb[],
    p_metadata jsonb[]
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_count constant integer := cardinality(p_event_ids);
    v_current bigint;
    v_inserted integer := 0;
    v_stored integer;
    v_same integer;
BEGIN
    IF p_expected_version < -1 THEN
        -- ANY and STREAM_EXISTS writers to one stream take turns rather than retry each other.
        PERFORM pg_advisory_xact_lock(hashtextextended('bg-stream:' || p_stream_id, 0));
    END IF;
    FOR attempt IN 1..10 LOOP
        SELECT coalesce(max(version), 0) INTO v_current FROM events WHERE stream_id = p_stream_id;
        EXIT WHEN (p_expected_version >= 0 AND v_current <> p_expected_version)
               OR (p_expected_version = -1 AND v_current <> 0)
               OR (p_expected_version = -2 AND v_current = 0);
        IF p_expected_version >= -1 THEN
            -- An exact expectation: a version taken meanwhile is skipped, not raised, so that
            -- the check below can report the version that took it.
            INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
            SELECT p_stream_id, v_current + n.ord, n.event_id, n.type, n.schema_version, n.data,
                   n.metadata
              FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_metadata)
                       WITH ORDINALITY AS n(event_id, type, schema_version, data, metadata, ord)
                ON CONFLICT DO NOTHING;
            GET DIAGNOSTICS v_inserted = ROW_COUNT;
            EXIT;
        END IF;
        BEGIN
            INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
            SELECT p_stream_id, v_current + n.ord, n.event_id, n.type, n.schema_version, n.data,
                   n.metadata
              FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_metadata)
                       WITH ORDINALITY AS n(event_id, type, schema_version, data, metadata, ord)
                ON CONFLICT (event_id) DO NOTHING;
            GET DIAGNOSTICS v_inserted = ROW_COUNT;
            EXIT;
        EXCEPTION WHEN unique_violation THEN
            -- Another append took one of these versions: read the stream's end again.
            v_current := NULL;
        END;
    END LOOP;
    IF v_inserted = v_count THEN
        RETURN v_current + v_inserted;
    END IF;

    -- The rare paths: the version did not match, or an event id is already stored.
    SELECT count(*),
           count(*) FILTER (WHERE e.stream_id = p_stream_id
                              AND e.type = n.type
                              AND e.schema_version = n.schema_version
                              AND e.data = n.data)
      INTO v_stored, v_same
      FROM unnest(p_event_ids, p_types, p_schema_versions, p_data)
               AS n(event_id, type, schema_version, data)
      JOIN events e ON e.event_id = n.event_id;
    IF v_inserted = 0 AND v_stored = v_count AND v_same = v_stored THEN
        -- A producer retry of an append that already landed: nothing to write.
        RETURN -1;
    END IF;
    IF v_stored > v_inserted THEN
        RAISE EXCEPTION 'event ids already stored with other content'
            USING ERRCODE = 'BG002', DETAIL = p_stream_id;
    END IF;
    -- Our own rows of this batch, about to be rolled back, are not the stream's version.
    SELECT coalesce(max(version), 0) INTO v_current
      FROM events
     WHERE stream_id = p_stream_id AND event_id <> ALL (p_event_ids);
    RAISE EXCEPTION 'wrong expected version for stream %', p_stream_id
        USING ERRCODE = 'BG001', DETAIL = v_current::text;
END;
$$;

-- Where each projector has got to, advanced in the same transaction as its writes.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name            text PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    position        bigint      NOT NULL DEFAULT 0,
    state           text        NOT NULL DEFAULT 'running',
    error           text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The appointments read model. Written inline, in the transaction that appends BookingConfirmed,
-- so the unique index on booking_uid is the last guard (layer 4); rebuilt from the log by replay.
CREATE TABLE IF NOT EXISTS appointments (
    appointment_id  uuid PRIMARY KEY,
    booking_uid     text        NOT NULL,
    booking_id      bigint,
    call_id         text        NOT NULL,
    attempt_id      uuid        NOT NULL,
    event_type_id   bigint      NOT NULL,
    start_at        timestamptz NOT NULL,
    end_at          timestamptz,
    attendee_name   text        NOT NULL,
    attendee_email  text,
    status          text        NOT NULL DEFAULT 'booked',
    confirmed_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- The uid it was confirmed with; a reschedule moves booking_uid along the chain from here.
    origin_uid      text        NOT NULL,
    CONSTRAINT appointments_status_check
        CHECK (status IN ('pending', 'booked', 'cancelled', 'declined'))
);
CREATE UNIQUE INDEX IF NOT EXISTS appointments_booking_uid_key ON appointments (booking_uid);
CREATE INDEX IF NOT EXISTS appointments_origin_uid ON appointments (origin_uid);
CREATE INDEX IF NOT EXISTS appointments_call_id ON appointments (call_id);
CREATE INDEX IF NOT EXISTS appointments_start_at ON appointments (start_at);

-- What Cal.com said of each booking uid, folded by bg_booking_fact (order-independent). Kept
-- with appointments, inline, and rebuilt with it by replay.
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

-- Idempotency keys and the in-flight state of each booking attempt (DESIGN.md section 9). Not a
-- projection: this is the workflow's own coordination state, and recovery reads it.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key             text PRIMARY KEY,
    fingerprint     text        NOT NULL,
    attempt_id      uuid        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('in_flight', 'finished', 'retryable')),
    response_body   jsonb,
    holder          text,
    locked_at       timestamptz NOT NULL DEFAULT now(),
    first_called_at timestamptz NOT NULL,
    attempt_ids     uuid[]      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    -- Set when the attempt failed after its request may have reached Cal.com: the reconciler
    -- looks for its booking from then on (service/booking/reconciler.py).
    reconcile_after timestamptz,
    -- Recovery's take-overs of this key, and when it gave up (AttemptParked).
    recovery_tries  integer     NOT NULL DEFAULT 0,
    parked_at       timestamptz
);
CREATE INDEX IF NOT EXISTS idempotency_keys_in_flight ON idempotency_keys (locked_at)
    WHERE status = 'in_flight';
CREATE INDEX IF NOT EXISTS idempotency_keys_attempt ON idempotency_keys (attempt_id);
CREATE INDEX IF NOT EXISTS idempotency_keys_reconcile ON idempotency_keys (reconcile_after)
    WHERE reconcile_after IS NOT NULL;

-- Rejections read model, kept by the projector runner: the listing of rejections over a time
-- range with their reason counts (GET /v1/rejections). Rebuilt by `booking-guard replay`.
CREATE TABLE IF NOT EXISTS rejections (
    event_id        uuid PRIMARY KEY,
    position        bigint      NOT NULL,
    attempt_id      uuid        NOT NULL,
    call_id         text        NOT NULL,
    guard           text        NOT NULL,
    layer           integer,
    reason          text        NOT NULL,
    booking_uid     text,
    detail          jsonb       NOT NULL,
    rejected_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rejections_rejected_at ON rejections (rejected_at, position);

-- A rescheduled booking's history includes the event that gave it its new uid.
CREATE INDEX IF NOT EXISTS events_new_booking_uid ON events ((data ->> 'new_booking_uid'), position)
    WHERE data ? 'new_booking_uid';

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
