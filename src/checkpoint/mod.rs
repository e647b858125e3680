//! Signed checkpoints: a statement, signed with the data directory's Ed25519 key ([`key`]),
//! that tenant T's log had the chain link C at `seq` N and that the state there hashed to S.
//! Exported and kept elsewhere, they let anyone prove later that the log still extends them:
//! history rewritten before N changes the chain link at N, and a log cut short loses it.
//!
//! Checkpoints live in `<data-dir>/checkpoints/<tenant>.jsonl`, one JSON object a line;
//! `idpsync log checkpoint export` concatenates them, and `idpsync log verify --checkpoints`
//! checks a log against such a file ([`verify`]). `idpsync serve` signs one per tenant every
//! N records or M minutes, whichever comes first, when the log has moved ([`signer`]).
//!
//! The signed bytes: `"idpsync checkpoint v1\n" ‖ tenant ‖ "\n" ‖ seq (u64 LE) ‖ chain (32) ‖
//! snapshot hash (32) ‖ time (i64 LE, microseconds since the epoch)`.

pub mod key;
pub mod signer;
pub mod verify;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use idpsync_engine::{SubmitError, Tenant};
use idpsync_storage::{Hash32, LogStore, Seq, StoreError, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

/// The directory of the checkpoint files inside the data directory.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

const DOMAIN: &[u8] = b"idpsync checkpoint v1\n";

/// One signed checkpoint, as stored and exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checkpoint {
    /// The tenant.
    pub tenant: TenantId,
    /// The record the checkpoint is at.
    pub seq: u64,
    /// That record's chain link, hex.
    pub chain: String,
    /// The hash of the state there (the snapshot's), hex.
    pub snapshot_hash: String,
    /// When it was signed, RFC 3339.
    pub time: String,
    /// The signer's public key, hex.
    pub key: String,
    /// The Ed25519 signature, hex.
    pub signature: String,
}

/// Why a checkpoint operation failed; verification failures name the tenant and the `seq`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A key file is not what it should be.
    #[error("checkpoint key {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint line does not parse.
    #[error("{path}, line {line}: not a checkpoint: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The log does not extend a checkpoint, or the checkpoint is not genuine.
    #[error("tenant {tenant}, seq {seq}: {reason}")]
    Mismatch {
        /// The tenant.
        tenant: TenantId,
        /// The checkpoint's `seq`.
        seq: u64,
        /// What does not match.
        reason: String,
    },
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine could not take the snapshot.
    #[error(transparent)]
    Engine(#[from] idpsync_engine::EngineError),
    /// The tenant's writer refused the snapshot.
    #[error("cannot take a snapshot for a checkpoint: {0}")]
    Submit(#[from] SubmitError),
}

/// The bytes a checkpoint's signature covers.
fn message(tenant: &TenantId, seq: u64, chain: &Hash32, snapshot_hash: &Hash32, time: Timestamp) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(DOMAIN.len() + tenant.as_str().len() + 1 + 8 + 64 + 8);
    bytes.extend_from_slice(DOMAIN);
    bytes.extend_from_slice(tenant.as_str().as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&chain.0);
    bytes.extend_from_slice(&snapshot_hash.0);
    bytes.extend_from_slice(&time.0.to_le_bytes());
    bytes
}

impl Checkpoint {
    /// Signs a checkpoint.
    pub fn sign(
        key: &SigningKey,
        tenant: &TenantId,
        seq: Seq,
        chain: Hash32,
        snapshot_hash: Hash32,
        time: Timestamp,
    ) -> Checkpoint {
        let signature = key.sign(&message(tenant, seq.0, &chain, &snapshot_hash, time));
        Checkpoint {
            tenant: tenant.clone(),
            seq: seq.0,
            chain: chain.to_hex(),
            snapshot_hash: snapshot_hash.to_hex(),
            time: time.to_rfc3339(),
            key: key::hex(key.verifying_key().as_bytes()),
            signature: key::hex(&signature.to_bytes()),
        }
    }

    fn mismatch(&self, reason: impl Into<String>) -> CheckpointError {
        CheckpointError::Mismatch {
            tenant: self.tenant.clone(),
            seq: self.seq,
            reason: reason.into(),
        }
    }

    /// The chain link it records.
    pub fn chain_hash(&self) -> Result<Hash32, CheckpointError> {
        Hash32::from_hex(&self.chain).ok_or_else(|| self.mismatch("the chain link is not 32 bytes of hex"))
    }

    /// The state hash it records.
    pub fn state_hash(&self) -> Result<Hash32, CheckpointError> {
        Hash32::from_hex(&self.snapshot_hash).ok_or_else(|| self.mismatch("the snapshot hash is not 32 bytes of hex"))
    }

    /// Checks that `trusted` signed exactly these fields.
    pub fn check_signature(&self, trusted: &VerifyingKey) -> Result<(), CheckpointError> {
        if self.key != key::hex(trusted.as_bytes()) {
            return Err(self.mismatch(format!(
                "signed by key {}, not by this data directory's key {}",
                self.key,
                key::hex(trusted.as_bytes())
            )));
        }
        let time = Timestamp::parse_rfc3339(&self.time).map_err(|error| self.mismatch(error.to_string()))?;
        let signature = key::unhex::<64>(&self.signature)
            .map(|bytes| Signature::from_bytes(&bytes))
            .ok_or_else(|| self.mismatch("the signature is not 64 bytes of hex"))?;
        let message = message(&self.tenant, self.seq, &self.chain_hash()?, &self.state_hash()?, time);
        trusted
            .verify_strict(&message, &signature)
            .map_err(|_| self.mismatch("the signature does not match: the checkpoint was altered"))
    }
}

/// The checkpoint file of `tenant` in `data_dir`.
pub fn file_of(data_dir: &Path, tenant: &TenantId) -> PathBuf {
    data_dir.join(CHECKPOINTS_DIR).join(format!("{tenant}.jsonl"))
}

/// Appends a checkpoint to its tenant's file and flushes it to disk.
pub fn append(data_dir: &Path, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let path = file_of(data_dir, &checkpoint.tenant);
    let io = |source| CheckpointError::Io {
        path: path.clone(),
        source,
    };
    if let Some(directory) = path.parent() {
        idpsync_storage::private_files::create_dir_all(directory).map_err(io)?;
    }
    let mut line = serde_json::to_string(checkpoint).expect("a checkpoint serialises");
    line.push('\n');
    let mut file = idpsync_storage::private_files::file_options()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Parses JSON lines of checkpoints (blank lines are skipped).
pub fn parse_lines(path: &Path, text: &str) -> Result<Vec<Checkpoint>, CheckpointError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| CheckpointError::Malformed {
                path: path.to_owned(),
                line: index + 1,
                reason: error.to_string(),
            })
        })
        .collect()
}

/// Every stored checkpoint of the data directory (of one tenant, or all), by tenant then seq.
pub fn stored(data_dir: &Path, only: Option<&TenantId>) -> Result<Vec<Checkpoint>, CheckpointError> {
    let directory = data_dir.join(CHECKPOINTS_DIR);
    let entries = match std::fs::read_dir(&directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: directory,
                source,
            });
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    let mut checkpoints = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| CheckpointError::Io {
            path: path.clone(),
            source,
        })?;
        checkpoints.extend(
            parse_lines(&path, &text)?
                .into_iter()
                .filter(|checkpoint| only.is_none_or(|tenant| &checkpoint.tenant == tenant)),
        );
    }
    Ok(checkpoints)
}

/// Takes a snapshot of `tenant` at its head and signs a checkpoint of it; `None` for an empty
/// log.
pub async fn make(
    tenant: &Tenant,
    store: &std::sync::Arc<dyn LogStore>,
    key: &SigningKey,
) -> Result<Option<Checkpoint>, CheckpointError> {
    let snapshot = tenant.snapshot_now().await?;
    if snapshot.seq == Seq::ZERO {
        return Ok(None);
    }
    let record = store.read(tenant.id(), snapshot.seq, 1).await?;
    let Some(record) = record.first() else {
        return Err(CheckpointError::Mismatch {
            tenant: tenant.id().clone(),
            seq: snapshot.seq.0,
            reason: "the snapshot's record is missing from the log".to_owned(),
        });
    };
    Ok(Some(Checkpoint::sign(
        key,
        tenant.id(),
        snapshot.seq,
        record.chain,
        snapshot.state_hash,
        Timestamp::now(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (SigningKey, Checkpoint) {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let checkpoint = Checkpoint::sign(
            &key,
            &TenantId::new("acme").unwrap(),
            Seq(42),
            Hash32([1; 32]),
            Hash32([2; 32]),
            Timestamp(1_700_000_000_000_001),
        );
        (key, checkpoint)
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_edit_breaks_it() {
        let (key, checkpoint) = sample();
        checkpoint.check_signature(&key.verifying_key()).unwrap();
        let line = serde_json::to_string(&checkpoint).unwrap();
        let back = parse_lines(Path::new("x"), &line).unwrap();
        assert_eq!(back, vec![checkpoint.clone()]);
        let edits: [fn(&mut Checkpoint); 4] = [
            |c| c.seq += 1,
            |c| c.chain = Hash32([3; 32]).to_hex(),
            |c| c.snapshot_hash = Hash32([3; 32]).to_hex(),
            |c| c.time = Timestamp(1_700_000_000_000_002).to_rfc3339(),
        ];
        for edit in edits {
            let mut edited = checkpoint.clone();
            edit(&mut edited);
            let error = edited.check_signature(&key.verifying_key()).unwrap_err().to_string();
            assert!(error.contains("tenant acme") && error.contains("altered"), "{error}");
        }
        let stranger = SigningKey::from_bytes(&[9u8; 32]);
        let error = checkpoint
            .check_signature(&stranger.verifying_key())
            .unwrap_err()
            .to_string();
        assert!(error.contains("signed by key"), "{error}");
    }
}
