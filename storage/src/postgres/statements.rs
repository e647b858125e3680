//! The SQL the store runs, written once per schema: every table name is qualified, so no
//! connection depends on its `search_path`.

/// `name` as an SQL identifier. Schema names are checked to need no escaping
/// ([`super::settings`]); the quotes keep it from ever being read as a keyword.
pub(super) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every statement, for one schema.
pub(super) struct Statements {
    pub(super) ensure_tenant: String,
    pub(super) head: String,
    pub(super) tenants: String,
    pub(super) lock_heads: String,
    pub(super) insert_records: String,
    pub(super) upsert_secrets: String,
    pub(super) update_heads: String,
    pub(super) read: String,
    pub(super) secrets: String,
    pub(super) destroy_secret: String,
    pub(super) lock_head_shared: String,
    pub(super) delete_snapshot: String,
    pub(super) insert_snapshot: String,
    pub(super) insert_snapshot_part: String,
    pub(super) snapshot_at_or_before: String,
    pub(super) snapshot_part: String,
    pub(super) snapshot_parts: String,
    pub(super) snapshots: String,
    pub(super) writable: String,
    pub(super) meta_get: String,
    pub(super) meta_list: String,
    pub(super) meta_insert: String,
    pub(super) meta_update: String,
    pub(super) meta_delete: String,
}

impl Statements {
    pub(super) fn new(schema: &str) -> Statements {
        let s = quoted(schema);
        Statements {
            ensure_tenant: format!(
                "INSERT INTO {s}.heads (tenant, seq, recorded_at, chain) VALUES ($1, 0, $2, $3) ON CONFLICT (tenant) DO NOTHING"
            ),
            head: format!("SELECT seq, recorded_at, chain FROM {s}.heads WHERE tenant = $1"),
            tenants: format!("SELECT tenant FROM {s}.heads ORDER BY tenant"),
            // Locked in name order, so that two committers never wait for each other in a cycle.
            lock_heads: format!(
                "SELECT tenant, seq, recorded_at, chain FROM {s}.heads WHERE tenant = ANY($1) ORDER BY tenant FOR UPDATE"
            ),
            insert_records: format!(
                "INSERT INTO {s}.records (tenant, seq, recorded_at, event_id, version, payload, chain)
                 SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::uuid[], $5::int4[], $6::bytea[], $7::bytea[])"
            ),
            upsert_secrets: format!(
                "INSERT INTO {s}.secrets (tenant, id, material)
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])
                 ON CONFLICT (tenant, id) DO UPDATE SET material = EXCLUDED.material"
            ),
            update_heads: format!(
                "UPDATE {s}.heads AS h SET seq = u.seq, recorded_at = u.recorded_at, chain = u.chain
                 FROM unnest($1::text[], $2::int8[], $3::int8[], $4::bytea[]) AS u (tenant, seq, recorded_at, chain)
                 WHERE h.tenant = u.tenant"
            ),
            read: format!(
                "SELECT seq, recorded_at, event_id, version, payload, chain FROM {s}.records
                 WHERE tenant = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
            ),
            secrets: format!("SELECT id, material FROM {s}.secrets WHERE tenant = $1 ORDER BY id"),
            destroy_secret: format!("DELETE FROM {s}.secrets WHERE tenant = $1 AND id = $2"),
            lock_head_shared: format!("SELECT seq FROM {s}.heads WHERE tenant = $1 FOR SHARE"),
            delete_snapshot: format!("DELETE FROM {s}.snapshots WHERE tenant = $1 AND seq = $2"),
            insert_snapshot: format!(
                "INSERT INTO {s}.snapshots (tenant, seq, state_hash, len) VALUES ($1, $2, $3, $4)"
            ),
            insert_snapshot_part: format!(
                "INSERT INTO {s}.snapshot_parts (tenant, seq, part, bytes) VALUES ($1, $2, $3, $4)"
            ),
            snapshot_at_or_before: format!(
                "SELECT seq, state_hash, len FROM {s}.snapshots WHERE tenant = $1 AND seq <= $2 ORDER BY seq DESC LIMIT 1"
            ),
            snapshot_part: format!(
                "SELECT bytes FROM {s}.snapshot_parts WHERE tenant = $1 AND seq = $2 AND part = $3"
            ),
            snapshot_parts: format!(
                "SELECT bytes FROM {s}.snapshot_parts WHERE tenant = $1 AND seq = $2 ORDER BY part"
            ),
            snapshots: format!("SELECT seq, state_hash FROM {s}.snapshots WHERE tenant = $1 ORDER BY seq"),
            writable: "SELECT current_setting('transaction_read_only') = 'off'".to_owned(),
            meta_get: format!("SELECT version, value FROM {s}.meta WHERE namespace = $1 AND key = $2"),
            meta_list: format!("SELECT key, version, value FROM {s}.meta WHERE namespace = $1 ORDER BY key"),
            meta_insert: format!(
                "INSERT INTO {s}.meta (namespace, key, version, value) VALUES ($1, $2, 1, $3) ON CONFLICT DO NOTHING"
            ),
            meta_update: format!(
                "UPDATE {s}.meta SET version = version + 1, value = $4 WHERE namespace = $1 AND key = $2 AND version = $3"
            ),
            meta_delete: format!("DELETE FROM {s}.meta WHERE namespace = $1 AND key = $2 AND version = $3"),
        }
    }
}
