//! `idpsync backup` and `idpsync restore`: a backup is a data directory of its own, taken
//! while the service runs.
//!
//! A backup copies every tenant's log (records, the users' keys, snapshots) from the store,
//! whichever backend it is, into a new redb log in the backup directory, record for record
//! through [`crate::copy`]: each copied log is chained again and must come out with the
//! source's links, and is verified from its first record. Reading a store never blocks its
//! writers, so the service keeps serving; each tenant's copy stops at the head the tenant had
//! when its copy began. Then the files of the data directory that are not in the log follow:
//! the store's durable metadata (tokens, integration cursors and held syncs, where the store
//! keeps them: see `idpsync_storage::meta::namespaces`), then the files of the data directory:
//! the token hashes, the checkpoint key pair, the signed checkpoints and the integrations'
//! cursors, all private to their owner.
//!
//! Because a backup is a data directory, `idpsync --data-dir <backup> log verify` checks it
//! and `idpsync --data-dir <backup> serve` would start on it. A restore copies it back into an
//! empty data directory (or an empty PostgreSQL store), verified the same way.

use std::io;
use std::path::{Path, PathBuf};

use idpsync_storage::meta::namespaces;
use idpsync_storage::{LogStore, RedbStore, Seq, StoreError, TenantId, private_files};

use crate::checkpoint::{CHECKPOINTS_DIR, key};
use crate::copy::{CopyError, CopyReport, copy_tenant_with_progress};
use crate::tokens::TOKENS_FILE;

/// The files and directories of a data directory that live beside the log, in the order they
/// are copied. (The bootstrap token is not: it is a secret shown once.)
const SIDE_FILES: &[&str] = &[
    TOKENS_FILE,
    key::KEY_FILE,
    key::PUBLIC_KEY_FILE,
    CHECKPOINTS_DIR,
    "drivers",
];

/// What a backup or a restore copied.
#[derive(Debug, Default)]
pub struct BackupReport {
    /// Each tenant's log.
    pub tenants: Vec<CopyReport>,
    /// Metadata entries copied (tokens, cursors, held syncs, the shared checkpoint key kept in the
    /// store).
    pub metadata: usize,
    /// The side files copied, relative to the data directory.
    pub files: Vec<PathBuf>,
}

/// Why a backup or a restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination already holds something.
    #[error(
        "{path} is not empty: a backup goes into a new directory, a restore into a data directory that holds no log"
    )]
    NotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// The backup to restore holds no log.
    #[error(
        "{path} is not a backup: it holds no log (no {})",
        idpsync_storage::redb_store::DATABASE_FILE
    )]
    NotABackup {
        /// The directory given.
        path: PathBuf,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Copying a tenant's log.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// Copying a file.
    #[error("copying {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
}

/// How far a backup or restore has come: the tenant being copied, the records it has copied
/// and the head it copies up to.
pub type TenantProgress<'a> = &'a mut (dyn FnMut(&TenantId, Seq, Seq) + Send);

/// Backs up `store` and the side files of `data_dir` into `to`, a directory that must not
/// exist or be empty.
pub async fn back_up(
    store: &dyn LogStore,
    data_dir: &Path,
    to: &Path,
    progress: TenantProgress<'_>,
) -> Result<BackupReport, BackupError> {
    if is_non_empty(to)? {
        return Err(BackupError::NotEmpty { path: to.to_owned() });
    }
    private_files::create_dir_all(to).map_err(|source| BackupError::File {
        path: to.to_owned(),
        source,
    })?;
    let destination = RedbStore::open(to)?;
    let mut report = BackupReport::default();
    for tenant in store.tenants().await? {
        let copied = copy_tenant_with_progress(store, &destination, &tenant, &mut |done, head| {
            progress(&tenant, done, head)
        })
        .await?;
        report.tenants.push(copied);
    }
    report.metadata = copy_metadata(store, &destination).await?;
    drop(destination);
    report.files = copy_side_files(data_dir, to)?;
    Ok(report)
}

/// Restores the backup in `from` into `store` and the side files into `data_dir`: `store`
/// must hold no records and `data_dir` none of the side files.
pub async fn restore(
    from: &Path,
    store: &dyn LogStore,
    data_dir: &Path,
    progress: TenantProgress<'_>,
) -> Result<BackupReport, BackupError> {
    if !from.join(idpsync_storage::redb_store::DATABASE_FILE).is_file() {
        return Err(BackupError::NotABackup { path: from.to_owned() });
    }
    for tenant in store.tenants().await? {
        if store.head(&tenant).await?.seq.0 > 0 {
            return Err(BackupError::NotEmpty {
                path: data_dir.to_owned(),
            });
        }
    }
    if let Some(present) = SIDE_FILES
        .iter()
        .map(|name| data_dir.join(name))
        .find(|path| path.exists())
    {
        return Err(BackupError::NotEmpty { path: present });
    }
    let source = RedbStore::open(from)?;
    let mut report = BackupReport::default();
    for tenant in source.tenants().await? {
        let copied =
            copy_tenant_with_progress(&source, store, &tenant, &mut |done, head| progress(&tenant, done, head)).await?;
        report.tenants.push(copied);
    }
    report.metadata = copy_metadata(&source, store).await?;
    report.files = copy_side_files(from, data_dir)?;
    Ok(report)
}

/// Copies the durable metadata of `from` into `to`, which holds none of it; returns how many
/// entries.
async fn copy_metadata(from: &dyn LogStore, to: &dyn LogStore) -> Result<usize, BackupError> {
    let mut copied = 0;
    for namespace in namespaces::DURABLE {
        for entry in from.list_meta(namespace).await? {
            to.put_meta(namespace, &entry.key, None, entry.value).await?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Whether `path` exists as anything but an empty directory.
fn is_non_empty(path: &Path) -> Result<bool, BackupError> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) if error.kind() == io::ErrorKind::NotADirectory => Ok(true),
        Err(source) => Err(BackupError::File {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Copies the side files that exist in `from` to `to`, private to their owner; returns them.
fn copy_side_files(from: &Path, to: &Path) -> Result<Vec<PathBuf>, BackupError> {
    private_files::create_dir_all(to).map_err(|source| BackupError::File {
        path: to.to_owned(),
        source,
    })?;
    let mut copied = Vec::new();
    for name in SIDE_FILES {
        copy_tree(from, to, Path::new(name), &mut copied)?;
    }
    Ok(copied)
}

/// Copies `relative` (a file, or a directory and everything in it) from under `from` to under
/// `to`.
fn copy_tree(from: &Path, to: &Path, relative: &Path, copied: &mut Vec<PathBuf>) -> Result<(), BackupError> {
    let source = from.join(relative);
    let target = to.join(relative);
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::File { path, source }
    };
    let metadata = match std::fs::metadata(&source) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(failed(&source)(error)),
    };
    if metadata.is_dir() {
        private_files::create_dir_all(&target).map_err(failed(&target))?;
        let mut entries: Vec<_> = std::fs::read_dir(&source)
            .map_err(failed(&source))?
            .collect::<Result<_, _>>()
            .map_err(failed(&source))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            copy_tree(from, to, &relative.join(entry.file_name()), copied)?;
        }
    } else {
        let bytes = std::fs::read(&source).map_err(failed(&source))?;
        let mut file = private_files::create_file(&target).map_err(failed(&target))?;
        io::Write::write_all(&mut file, &bytes).map_err(failed(&target))?;
        file.sync_all().map_err(failed(&target))?;
        copied.push(relative.to_owned());
    }
    Ok(())
}
