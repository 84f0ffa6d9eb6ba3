-- booking-guard schema. Applied at every start-up under an advisory lock, so it must stay
-- idempotent: every statement is IF NOT EXISTS / OR REPLACE.

-- The ledger. Append-only; everything else in this file is derived from it or guards writes to it.
CREATE TABLE IF NOT EXISTS events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction. Subscribers read in (transaction_id, position) order and only
    -- below the oldest running transaction, so an event whose transaction took a lower position
    -- but committed later is never skipped (see events/store.py, "the transaction horizon").
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

-- Append a batch, or an event with ANY / STREAM_EXISTS, to one stream in a single round trip.
-- (A single event at an exact version needs no function: events/store.py sends one INSERT.)
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
    status          text        NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
    confirmed_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS appointments_booking_uid_key ON appointments (booking_uid);
CREATE INDEX IF NOT EXISTS appointments_call_id ON appointments (call_id);
CREATE INDEX IF NOT EXISTS appointments_start_at ON appointments (start_at);

-- Idempotency keys and the in-flight state of each booking attempt (DESIGN.md section 9). Not a
-- projection: this is the workflow's own coordination state, and recovery reads it.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key             text PRIMARY KEY,
    fingerprint     text        NOT NULL,
    attempt_id      uuid        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('in_flight', 'finished', 'retryable')),
    response_status integer,
    response_body   jsonb,
    holder          text,
    locked_at       timestamptz NOT NULL DEFAULT now(),
    first_called_at timestamptz NOT NULL,
    attempt_ids     uuid[]      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX IF NOT EXISTS idempotency_keys_in_flight ON idempotency_keys (locked_at)
    WHERE status = 'in_flight';
CREATE INDEX IF NOT EXISTS idempotency_keys_attempt ON idempotency_keys (attempt_id);

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
