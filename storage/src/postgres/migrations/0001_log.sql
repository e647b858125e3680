-- Version 1: the log, its heads, the users' keys and the snapshots.
-- Runs with search_path set to the store's schema, inside the migration's transaction.

-- A tenant exists when it has a head: its last record, or seq 0 for an empty log.
CREATE TABLE heads (
    tenant      text COLLATE "C" PRIMARY KEY,
    seq         bigint NOT NULL CHECK (seq >= 0),
    recorded_at bigint NOT NULL,
    chain       bytea  NOT NULL CHECK (octet_length(chain) = 32)
);

-- One row per record. The primary key makes a position unique: two writers can never both
-- store a record at the same seq of a tenant.
CREATE TABLE records (
    tenant      text COLLATE "C" NOT NULL,
    seq         bigint  NOT NULL CHECK (seq >= 1),
    recorded_at bigint  NOT NULL,
    event_id    uuid    NOT NULL,
    version     integer NOT NULL CHECK (version BETWEEN 0 AND 65535),
    payload     bytea   NOT NULL,
    chain       bytea   NOT NULL CHECK (octet_length(chain) = 32),
    PRIMARY KEY (tenant, seq)
);
-- Payloads are mostly sealed (encrypted): compressing them would cost time for nothing.
ALTER TABLE records ALTER COLUMN payload SET STORAGE EXTERNAL;

-- The log has no update and no delete; the database refuses them too.
CREATE FUNCTION records_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the idpsync log is append-only: % on records is refused', TG_OP;
END
$$;
CREATE TRIGGER records_are_append_only BEFORE UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION records_are_append_only();
CREATE TRIGGER records_are_never_truncated BEFORE TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION records_are_append_only();

-- Per-user keys, outside the chain so that one can be destroyed.
CREATE TABLE secrets (
    tenant   text COLLATE "C" NOT NULL,
    id       bytea NOT NULL CHECK (octet_length(id) = 16),
    material bytea NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- State snapshots: a header row, and the bytes in parts of at most 1 MiB.
CREATE TABLE snapshots (
    tenant     text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL CHECK (seq >= 0),
    state_hash bytea  NOT NULL CHECK (octet_length(state_hash) = 32),
    len        bigint NOT NULL CHECK (len >= 0),
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE snapshot_parts (
    tenant text COLLATE "C" NOT NULL,
    seq    bigint  NOT NULL,
    part   integer NOT NULL CHECK (part >= 0),
    bytes  bytea   NOT NULL,
    PRIMARY KEY (tenant, seq, part),
    FOREIGN KEY (tenant, seq) REFERENCES snapshots (tenant, seq) ON DELETE CASCADE
);
ALTER TABLE snapshot_parts ALTER COLUMN bytes SET STORAGE EXTERNAL;
