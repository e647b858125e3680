//! What is logged and kept of a user's personal fields once sealed: a sealed part (which cipher,
//! its nonce, and the encrypted fields), and the keyed hash an erased user's externalId leaves
//! behind. Events carry them and the fold keeps them on each user, so they sit below both;
//! sealing, opening and hashing (the keys and the ciphers) are `seal`'s.

use serde::{Deserialize, Serialize};

/// A user's personal fields sealed under its key: the postcard-encoded fields, encrypted, with
/// their 16-byte tag, and the random nonce they were sealed with.
#[derive(Clone, PartialEq, Eq)]
pub enum Sealed {
    /// AES-256-GCM over the profile alone (the externalId was logged beside it, in the clear):
    /// what builds before sealed externalIds wrote; opened, never written.
    Aes256Gcm {
        /// A random 96-bit nonce.
        nonce: [u8; 12],
        /// The encrypted profile and its tag.
        ciphertext: Vec<u8>,
    },
    /// XChaCha20-Poly1305 over the profile alone: what builds before AES-GCM wrote; opened,
    /// never written.
    XChaCha20Poly1305 {
        /// A random 192-bit nonce (boxed: every user in memory keeps its sealed fields, and
        /// the nonce inline would make every one of them 8 bytes larger).
        nonce: Box<[u8; 24]>,
        /// The encrypted profile and its tag.
        ciphertext: Vec<u8>,
    },
    /// AES-256-GCM over the profile and the externalId: what this build writes.
    Aes256GcmWithExternalId {
        /// A random 96-bit nonce.
        nonce: [u8; 12],
        /// The encrypted fields and their tag.
        ciphertext: Vec<u8>,
    },
}

// A user keeps its sealed fields beside the readable ones: keep them small.
const _: () = assert!(std::mem::size_of::<Option<Sealed>>() <= 40);

impl Sealed {
    /// The encrypted fields and their tag.
    pub fn ciphertext(&self) -> &[u8] {
        match self {
            Sealed::Aes256Gcm { ciphertext, .. }
            | Sealed::XChaCha20Poly1305 { ciphertext, .. }
            | Sealed::Aes256GcmWithExternalId { ciphertext, .. } => ciphertext,
        }
    }

    /// Whether the externalId is sealed in here (rather than logged beside it in the clear).
    pub fn holds_external_id(&self) -> bool {
        matches!(self, Sealed::Aes256GcmWithExternalId { .. })
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cipher = match self {
            Sealed::Aes256Gcm { .. } => "AES-256-GCM",
            Sealed::XChaCha20Poly1305 { .. } => "XChaCha20-Poly1305",
            Sealed::Aes256GcmWithExternalId { .. } => "AES-256-GCM, with the externalId",
        };
        write!(f, "Sealed({cipher}, {} bytes)", self.ciphertext().len())
    }
}

/// The keyed hash of an externalId (BLAKE3 under the tenant's lookup key, see
/// [`crate::seal::LookupKey`]): what an erased user keeps of it, so that the integration that
/// owns the user still recognises it when its IdP lists that id again. It reveals nothing of
/// the id to whoever lacks the tenant's lookup key; whoever has the key can test a guess.
///
/// Boxed: every erased user keeps one, and the other users none, so an absent hash costs a
/// pointer's room, not 33 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExternalIdHash(pub Box<[u8; 32]>);

impl std::fmt::Debug for ExternalIdHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExternalIdHash(")?;
        for byte in &self.0[..4] {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}
