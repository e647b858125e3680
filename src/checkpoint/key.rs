//! The checkpoint signing key: Ed25519, made on first use and kept in the data directory
//! beside the log, never in it: `checkpoint-key` (the 32-byte secret as hex, mode 0600) and
//! `checkpoint-key.pub` (the public key as hex), which whoever keeps exported checkpoints
//! should keep too.

use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use super::CheckpointError;
use crate::tokens::write_atomically;

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

/// The key of `data_dir`, made (and its public half written beside it) if there is none.
pub fn load_or_create(data_dir: &Path) -> Result<SigningKey, CheckpointError> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = unhex::<32>(&text).ok_or_else(|| CheckpointError::Key {
                path: path.clone(),
                reason: "not 32 bytes of hex".to_owned(),
            })?;
            Ok(SigningKey::from_bytes(&secret))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::fill(&mut secret);
            let key = SigningKey::from_bytes(&secret);
            let public = data_dir.join(PUBLIC_KEY_FILE);
            write_atomically(&public, format!("{}\n", hex(key.verifying_key().as_bytes())).as_bytes())
                .map_err(|error| io(&public, error))?;
            write_atomically(&path, format!("{}\n", hex(&secret)).as_bytes()).map_err(|error| io(&path, error))?;
            tracing::info!(key = %path.display(), "created the checkpoint signing key");
            Ok(key)
        }
        Err(error) => Err(io(&path, error)),
    }
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
