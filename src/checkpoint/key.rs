//! The checkpoint signing key: Ed25519, made on first use and kept beside the log, never in
//! it. On a store of its own (redb) it is the data directory's `checkpoint-key` (the 32-byte
//! secret as hex, mode 0600). On a store several replicas share (PostgreSQL) it is one
//! metadata entry of that store, made once by whichever replica first needs it, so that every
//! replica signs with the same key and none keeps it only on its own disk. Either way the data
//! directory holds `checkpoint-key.pub` (the public key as hex), which whoever keeps exported
//! checkpoints should keep too.

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use idpsync_storage::meta::namespaces::CHECKPOINT_KEY;
use idpsync_storage::{LogStore, StoreError};

use super::CheckpointError;
use crate::tokens::write_atomically;

/// The key of the metadata entry that holds the shared secret (in [`CHECKPOINT_KEY`]).
const SHARED_ENTRY: &str = "signing";

/// The secret key's file name in the data directory.
pub const KEY_FILE: &str = "checkpoint-key";
/// The public key's file name in the data directory.
pub const PUBLIC_KEY_FILE: &str = "checkpoint-key.pub";

fn io(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Bytes from hex, if `text` is exactly `N` bytes of it.
pub fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; N];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(bytes)
}

/// The key a server on `store` with the data directory `data_dir` signs with: the store's
/// shared key where replicas share the store ([`load_or_create_shared`]), else the data
/// directory's own ([`load_or_create`]).
pub async fn for_store(store: &dyn LogStore, data_dir: &Path) -> Result<SigningKey, CheckpointError> {
    if store.is_shared() {
        load_or_create_shared(store, data_dir).await
    } else {
        load_or_create(data_dir)
    }
}

/// The key of `data_dir`, made (and its public half written beside it) if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, CheckpointError> {
    let path = data_dir.join(KEY_FILE);
    match read_secret_file(data_dir)? {
        Some(key) => Ok(key),
        None => {
            let key = random_key();
            write_public(data_dir, &key)?;
            write_atomically(&path, format!("{}\n", hex(key.as_bytes())).as_bytes())
                .map_err(|error| io(&path, error))?;
            tracing::info!(key = %path.display(), "created the checkpoint signing key");
            Ok(key)
        }
    }
}

/// The key `store` keeps for every replica, made if it keeps none: from the data directory's
/// own key where it has one (so that the checkpoints this replica signed before still verify
/// with the shared public key), else at random. Replicas that start at once agree: the store
/// keeps the first key written, and the others read it. The public half is written to
/// `data_dir`; the secret is not.
pub async fn load_or_create_shared(store: &dyn LogStore, data_dir: &Path) -> Result<SigningKey, CheckpointError> {
    let key = match read_shared(store).await? {
        Some(key) => key,
        None => {
            let made = read_secret_file(data_dir)?.unwrap_or_else(random_key);
            match store
                .put_meta(CHECKPOINT_KEY, SHARED_ENTRY, None, made.as_bytes().to_vec())
                .await
            {
                Ok(_) => {
                    tracing::info!("stored the checkpoint signing key every replica shares");
                    made
                }
                // Another replica stored its key first: that one is everyone's.
                Err(StoreError::MetaConflict { .. }) => read_shared(store)
                    .await?
                    .ok_or_else(|| shared_key_error("it vanished after another replica stored it"))?,
                Err(error) => return Err(error.into()),
            }
        }
    };
    if read_secret_file(data_dir)?.is_some_and(|own| own != key) {
        tracing::warn!(
            file = %data_dir.join(KEY_FILE).display(),
            "this data directory's own checkpoint key is not the one the replicas share; checkpoints are signed with the shared key, whose public half replaces {PUBLIC_KEY_FILE}"
        );
    }
    write_public(data_dir, &key)?;
    Ok(key)
}

/// The shared key `store` keeps, if any.
async fn read_shared(store: &dyn LogStore) -> Result<Option<SigningKey>, CheckpointError> {
    let Some(entry) = store.get_meta(CHECKPOINT_KEY, SHARED_ENTRY).await? else {
        return Ok(None);
    };
    let secret: [u8; 32] = entry
        .value
        .as_slice()
        .try_into()
        .map_err(|_| shared_key_error(&format!("{} bytes, not 32", entry.value.len())))?;
    Ok(Some(SigningKey::from_bytes(&secret)))
}

fn shared_key_error(reason: &str) -> CheckpointError {
    CheckpointError::Key {
        path: PathBuf::from(format!("(the store's metadata {CHECKPOINT_KEY}/{SHARED_ENTRY})")),
        reason: reason.to_owned(),
    }
}

/// The secret in `data_dir`'s key file, if there is one.
fn read_secret_file(data_dir: &Path) -> Result<Option<SigningKey>, CheckpointError> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = unhex::<32>(&text).ok_or_else(|| CheckpointError::Key {
                path: path.clone(),
                reason: "not 32 bytes of hex".to_owned(),
            })?;
            Ok(Some(SigningKey::from_bytes(&secret)))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(io(&path, error)),
    }
}

fn random_key() -> SigningKey {
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    SigningKey::from_bytes(&secret)
}

/// Writes `key`'s public half to `data_dir`'s public key file, unless it holds it already.
fn write_public(data_dir: &Path, key: &SigningKey) -> Result<(), CheckpointError> {
    let path = data_dir.join(PUBLIC_KEY_FILE);
    let text = format!("{}\n", hex(key.verifying_key().as_bytes()));
    if std::fs::read_to_string(&path).is_ok_and(|stored| stored == text) {
        return Ok(());
    }
    write_atomically(&path, text.as_bytes()).map_err(|error| io(&path, error))
}

/// A public key from a file of hex (such as `checkpoint-key.pub`).
pub fn read_public(path: &PathBuf) -> Result<VerifyingKey, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|error| io(path, error))?;
    let bad = |reason: &str| CheckpointError::Key {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    let bytes = unhex::<32>(&text).ok_or_else(|| bad("not 32 bytes of hex"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not an Ed25519 public key"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use idpsync_storage::MemoryStore;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_starting_at_once_share_one_key_and_keep_no_secret_on_disk() {
        let store = Arc::new(MemoryStore::new());
        let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let made = dirs.iter().map(|dir| {
            let store = Arc::clone(&store);
            let dir = dir.path().to_owned();
            tokio::spawn(async move { load_or_create_shared(&*store, &dir).await.unwrap() })
        });
        let keys: Vec<SigningKey> = futures_util::future::join_all(made)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert!(keys.windows(2).all(|pair| pair[0] == pair[1]), "one key");
        for dir in &dirs {
            assert!(!dir.path().join(KEY_FILE).exists(), "the secret stays in the store");
            assert_eq!(
                read_public(&dir.path().join(PUBLIC_KEY_FILE)).unwrap(),
                keys[0].verifying_key()
            );
        }
        // A replica started later reads the same key.
        let later = tempfile::tempdir().unwrap();
        assert!(load_or_create_shared(&*store, later.path()).await.unwrap() == keys[0]);
    }

    #[tokio::test]
    async fn a_replicas_own_key_becomes_the_shared_one_if_none_is_shared_yet() {
        let store = MemoryStore::new();
        let dir = tempfile::tempdir().unwrap();
        let own = load_or_create(dir.path()).unwrap();
        assert!(load_or_create_shared(&store, dir.path()).await.unwrap() == own);
        let other = tempfile::tempdir().unwrap();
        assert!(load_or_create_shared(&store, other.path()).await.unwrap() == own);
    }

    #[tokio::test]
    async fn a_shared_key_of_the_wrong_length_is_a_clear_error() {
        let store = MemoryStore::new();
        store
            .put_meta(CHECKPOINT_KEY, SHARED_ENTRY, None, vec![1, 2, 3])
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let error = load_or_create_shared(&store, dir.path()).await.unwrap_err().to_string();
        assert!(error.contains("3 bytes, not 32"), "{error}");
        assert!(!dir.path().join(PUBLIC_KEY_FILE).exists(), "nothing written");
    }
}
