-- Version 2: metadata beside the logs, and a notification per change of a head.
-- Runs with search_path set to the store's schema, inside the migration's transaction.

-- Small versioned values (leases of scheduled work, state replicas share): every change names
-- the version it replaces.
CREATE TABLE meta (
    namespace text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    version   bigint NOT NULL CHECK (version >= 1),
    value     bytea  NOT NULL,
    PRIMARY KEY (namespace, key)
);
ALTER TABLE meta ALTER COLUMN value SET STORAGE EXTERNAL;

-- Every new tenant and every append moves a head: the transaction that does so notifies the
-- channel `idpsync_heads` with `schema tenant seq` (tab-separated), delivered when it commits.
-- Replicas on the same database follow each other's appends through it.
CREATE FUNCTION heads_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('idpsync_heads', TG_TABLE_SCHEMA || E'\t' || NEW.tenant || E'\t' || NEW.seq);
    RETURN NULL;
END
$$;
CREATE TRIGGER heads_notify AFTER INSERT OR UPDATE ON heads
    FOR EACH ROW EXECUTE FUNCTION heads_notify();
