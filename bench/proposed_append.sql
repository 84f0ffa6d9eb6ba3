-- A proposed bg_append_events (not applied: schema.sql is not bench's to change). Measured by
-- `python -m bench --only append_sql` and, through EventStore.append, `--only append_proposed`.
-- Same contract as schema.sql's; two changes, each measured in bench/README.md:
--  1. No NOTIFY here. A NOTIFY takes a cluster-wide lock from pre-commit until the commit record
--     is flushed, so every appending transaction commits one after another and group commit is
--     lost. The store sends the (coalesced) wake-up after commit instead.
--  2. The duplicate-id check only when an id is already there (ON CONFLICT on event_id), or when
--     the expected version fails (a producer retry of an append that landed), not on every call.
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
    v_current bigint;
    v_inserted integer := 0;
    v_stored integer;
    v_same integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('bg-stream:' || p_stream_id, 0));

    SELECT coalesce(max(version), 0) INTO v_current FROM events WHERE stream_id = p_stream_id;

    IF NOT ((p_expected_version >= 0 AND v_current <> p_expected_version)
            OR (p_expected_version = -1 AND v_current <> 0)
            OR (p_expected_version = -2 AND v_current = 0)) THEN
        INSERT INTO events (stream_id, version, event_id, type, schema_version, data, metadata)
        SELECT p_stream_id, v_current + n.ord, n.event_id, n.type, n.schema_version, n.data,
               n.metadata
          FROM unnest(p_event_ids, p_types, p_schema_versions, p_data, p_metadata)
                   WITH ORDINALITY AS n(event_id, type, schema_version, data, metadata, ord)
            ON CONFLICT (event_id) DO NOTHING;
        GET DIAGNOSTICS v_inserted = ROW_COUNT;
        IF v_inserted = cardinality(p_event_ids) THEN
            RETURN v_current + v_inserted;
        END IF;
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
    IF v_inserted = 0 AND v_stored = cardinality(p_event_ids) AND v_same = v_stored THEN
        -- A producer retry of an append that already landed: nothing to write.
        RETURN -1;
    END IF;
    IF v_stored > 0 THEN
        -- Raising rolls back whatever part of the batch was inserted above.
        RAISE EXCEPTION 'event ids already stored with other content'
            USING ERRCODE = 'BG002', DETAIL = p_stream_id;
    END IF;
    RAISE EXCEPTION 'wrong expected version for stream %', p_stream_id
        USING ERRCODE = 'BG001', DETAIL = v_current::text;
END;
$$;
