//! Scrubbing the database file of destroyed secrets.
//!
//! Destroying a secret rewrites the row that held it; redb writes the new row to another page
//! and frees the old one without overwriting it, and `Database::compact` moves pages without
//! clearing the free ones. So a destroyed key stays in `log.redb`, readable by anyone who can
//! read the file, until redb happens to reuse its page. A scrub rewrites the database into a
//! fresh file, which holds only what is live, and puts that file in the place of the old one.
//!
//! A scrub is due from the commit that destroys a secret until a scrub succeeds; the committer
//! marks it in a file of its own ([`DUE_FILE`]) before that commit, so that a scrub a crash
//! prevented runs at the next start.
//!
//! Crash safety: the fresh file is written beside the old one ([`SCRUB_FILE`]), committed
//! durably, then renamed over it, and the directory is synced. A crash before the rename leaves
//! the old file as it was and a partial fresh one, which the next open removes; after it, the
//! fresh file is the database, complete. The rename happens while the old file is still open
//! and locked, so no other process opens the old file in between and writes where no one
//! reads.
//!
//! What a scrub cannot reach: the old file's blocks become free space of the file system, not
//! zeros, until it reuses them; and a copy of the file made before (a backup, a snapshot of the
//! volume) keeps whatever it held then.

use std::path::Path;

use redb::{
    Database, Durability, Key, MultimapTableHandle, ReadTransaction, ReadableDatabase, TableDefinition, TableHandle,
    Value,
};

use crate::error::StoreError;
use crate::private_files;

use super::tables::{HEADS, JOURNAL, LOG, META, SECRET_ROWS, SECRETS};

/// The fresh file a scrub writes, beside the database file.
pub(super) const SCRUB_FILE: &str = "log.redb.scrub";

/// The file whose presence says a scrub is due, beside the database file.
pub(super) const DUE_FILE: &str = "log.redb.scrub-due";

/// Bytes copied per write transaction, so that a large log is never held in one.
const BYTES_PER_COMMIT: usize = 64 * 1024 * 1024;

/// Removes what a scrub interrupted by a crash left beside the database.
pub(super) fn remove_leftover(dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(dir.join(SCRUB_FILE)) {
        Ok(()) => {
            tracing::warn!(dir = %dir.display(), "removed the partial file of an interrupted scrub");
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StoreError::backend("removing an interrupted scrub's file", error)),
    }
}

/// Marks, durably, that the database file at `database` is due a scrub.
pub(super) fn mark_due(database: &Path) -> Result<(), StoreError> {
    let context = "marking a scrub due";
    private_files::create_file(&database.with_file_name(DUE_FILE))
        .and_then(|file| file.sync_all())
        .map_err(|e| StoreError::backend(context, e))?;
    sync_dir(database).map_err(|e| StoreError::backend(context, e))
}

/// Whether the database file at `database` is due a scrub.
pub(super) fn is_due(database: &Path) -> bool {
    database.with_file_name(DUE_FILE).exists()
}

/// Marks the database file at `database` scrubbed; if the mark cannot be removed, the next start
/// scrubs once more than it needs to.
pub(super) fn clear_due(database: &Path) {
    if let Err(error) = std::fs::remove_file(database.with_file_name(DUE_FILE)) {
        tracing::warn!(%error, "cannot remove the mark of a scrub that is done");
    }
}

/// Writes every table of `from` into a fresh database at `fresh`, durably. Refuses a database
/// with a table this build does not know, rather than leave it behind.
pub(super) fn copy_into(from: &Database, fresh: &Path) -> Result<(), StoreError> {
    let context = "scrubbing the database";
    let read = from.begin_read().map_err(|e| StoreError::backend(context, e))?;
    let known = [
        LOG.name(),
        JOURNAL.name(),
        HEADS.name(),
        SECRET_ROWS.name(),
        SECRETS.name(),
        META.name(),
    ];
    let tables = read.list_tables().map_err(|e| StoreError::backend(context, e))?;
    let multimaps = read
        .list_multimap_tables()
        .map_err(|e| StoreError::backend(context, e))?;
    if let Some(unknown) = tables
        .map(|table| table.name().to_owned())
        .chain(multimaps.map(|table| table.name().to_owned()))
        .find(|name| !known.contains(&name.as_str()))
    {
        return Err(StoreError::backend(
            context,
            std::io::Error::other(format!("the database has a table this build does not know: {unknown}")),
        ));
    }
    private_files::file_options()
        .write(true)
        .create_new(true)
        .open(fresh)
        .map_err(|e| StoreError::backend(context, e))?;
    let to = Database::builder()
        .create(fresh)
        .map_err(|e| StoreError::backend(context, e))?;
    copy_table(&read, &to, LOG)?;
    copy_table(&read, &to, JOURNAL)?;
    copy_table(&read, &to, HEADS)?;
    copy_table(&read, &to, SECRET_ROWS)?;
    copy_table(&read, &to, SECRETS)?;
    copy_table(&read, &to, META)?;
    // The last commit is durable: it flushes what the ones before it wrote.
    let mut last = to.begin_write().map_err(|e| StoreError::backend(context, e))?;
    last.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::backend(context, e))?;
    last.commit().map_err(|e| StoreError::backend(context, e))
}

/// Copies one table, in write transactions of about [`BYTES_PER_COMMIT`], none durable.
fn copy_table<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &Database,
    definition: TableDefinition<K, V>,
) -> Result<(), StoreError> {
    let context = "scrubbing the database";
    let source = match from.open_table(definition) {
        Ok(source) => source,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(error) => return Err(StoreError::backend(context, error)),
    };
    let mut entries = redb::ReadableTable::iter(&source).map_err(|e| StoreError::backend(context, e))?;
    loop {
        let mut txn = to.begin_write().map_err(|e| StoreError::backend(context, e))?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::backend(context, e))?;
        let mut copied = 0;
        let mut done = true;
        {
            let mut table = txn
                .open_table(definition)
                .map_err(|e| StoreError::backend(context, e))?;
            for entry in entries.by_ref() {
                let (key, value) = entry.map_err(|e| StoreError::backend(context, e))?;
                copied += K::as_bytes(&key.value()).as_ref().len() + V::as_bytes(&value.value()).as_ref().len();
                table
                    .insert(key.value(), value.value())
                    .map_err(|e| StoreError::backend(context, e))?;
                if copied >= BYTES_PER_COMMIT {
                    done = false;
                    break;
                }
            }
        }
        txn.commit().map_err(|e| StoreError::backend(context, e))?;
        if done {
            return Ok(());
        }
    }
}

/// Puts the fresh file in the place of the database file, durably.
pub(super) fn replace(fresh: &Path, database: &Path) -> Result<(), StoreError> {
    let context = "replacing the database with its scrubbed copy";
    std::fs::rename(fresh, database).map_err(|e| StoreError::backend(context, e))?;
    sync_dir(database).map_err(|e| StoreError::backend(context, e))
}

/// Syncs the directory of the database file, so that a file created or renamed there stays.
fn sync_dir(database: &Path) -> std::io::Result<()> {
    let dir = database.parent().unwrap_or_else(|| Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}
