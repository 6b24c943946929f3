-- The consumer's role: what `hookline-consumer run` needs and nothing else. It stores
-- events (INSERT, SELECT for the dedup probes), mirrors the registry (webhooks), writes
-- and expires dead letters, and keeps the day partitions through the functions below,
-- which run as the owner and do one thing each. It cannot DROP, ALTER or TRUNCATE a
-- table, nor UPDATE or DELETE an event. Migrations run as the owner (`hookline-consumer
-- migrate`). Like hookline_console (0003), a group role without login: a deployment
-- grants it to the consumer's login; creating it needs CREATEROLE.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_consumer') THEN
        IF (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            BEGIN
                CREATE ROLE hookline_consumer NOLOGIN;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        ELSE
            RAISE NOTICE 'role hookline_consumer is missing and % cannot create it: '
                'run the consumer as the owner, or have an administrator create it and '
                'migrate again', current_user;
        END IF;
    END IF;
END
$$;

-- Partitions are made by the owner whoever asks, and readable by the consumer (its
-- dedup probes name a day's partition) and the console.
CREATE OR REPLACE FUNCTION events_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
SET lock_timeout = '10s'
AS $$
DECLARE
    partition_name text := 'events_p' || to_char(day, 'YYYYMMDD');
    reader text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('hookline.events.partitions'));
    IF EXISTS (
        SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname = partition_name
    ) THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
        'INCLUDING COMPRESSION)',
        partition_name);
    EXECUTE format(
        'ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        partition_name, day, day + 1);
    FOREACH reader IN ARRAY ARRAY['hookline_consumer', 'hookline_console'] LOOP
        IF EXISTS (SELECT FROM pg_roles WHERE rolname = reader) THEN
            EXECUTE format('GRANT SELECT ON %I TO %I', partition_name, reader);
        END IF;
    END LOOP;
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION events_ensure_partition(date) FROM PUBLIC;

-- Fresh statistics for one day's partition (ANALYZE needs the owner).
CREATE FUNCTION events_analyze_day(day date) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $$
BEGIN
    IF EXISTS (SELECT FROM events_partitions() p WHERE p.day = events_analyze_day.day) THEN
        EXECUTE format('ANALYZE %I', 'events_p' || to_char(day, 'YYYYMMDD'));
    END IF;
END
$$;
REVOKE EXECUTE ON FUNCTION events_analyze_day(date) FROM PUBLIC;

-- Drops one day's partition if the whole day and every row stored in it are older than
-- `keep` (at least a day): the retention sweep, and the only way the consumer's role can
-- remove events. The detach takes the parent's lock for a moment (CONCURRENTLY cannot
-- run inside a function); a lock wait past 5 s gives up and the next sweep tries again.
CREATE FUNCTION events_expire_day(day date, keep interval) RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
SET lock_timeout = '5s'
AS $$
DECLARE
    partition_name text := 'events_p' || to_char(day, 'YYYYMMDD');
    cutoff timestamptz := now() - keep;
    last_stored timestamptz;
BEGIN
    IF keep < interval '1 day' THEN
        RAISE EXCEPTION 'events_expire_day keeps at least a day, not %', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM events_partitions() p
                   WHERE p.day = events_expire_day.day AND NOT p.detach_pending) THEN
        RETURN false;
    END IF;
    IF ((day + 1)::timestamp AT TIME ZONE 'UTC') > cutoff THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT max(stored_at) FROM %I', partition_name) INTO last_stored;
    IF last_stored > cutoff THEN
        RETURN false;
    END IF;
    EXECUTE format('ALTER TABLE events DETACH PARTITION %I', partition_name);
    EXECUTE format('DROP TABLE %I', partition_name);
    RETURN true;
END
$$;
REVOKE EXECUTE ON FUNCTION events_expire_day(date, interval) FROM PUBLIC;

DO $$
DECLARE
    p record;
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_consumer') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO hookline_consumer', current_schema());
        GRANT SELECT, INSERT ON events TO hookline_consumer;
        GRANT SELECT, INSERT, UPDATE ON webhooks TO hookline_consumer;
        GRANT SELECT, INSERT, DELETE ON dead_letters TO hookline_consumer;
        GRANT USAGE ON SEQUENCE dead_letters_id_seq TO hookline_consumer;
        -- Whether the schema is current (`--schema verify`).
        GRANT SELECT ON _sqlx_migrations TO hookline_consumer;
        GRANT EXECUTE ON FUNCTION events_ensure_partition(date), events_analyze_day(date),
            events_expire_day(date, interval) TO hookline_consumer;
        FOR p IN SELECT partition_name FROM events_partitions() LOOP
            EXECUTE format('GRANT SELECT ON %I TO hookline_consumer', p.partition_name);
        END LOOP;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'hookline_console') THEN
        FOR p IN SELECT partition_name FROM events_partitions() LOOP
            EXECUTE format('GRANT SELECT ON %I TO hookline_console', p.partition_name);
        END LOOP;
    END IF;
END
$$;
