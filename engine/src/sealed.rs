//! A profile as it is logged and kept once sealed: which cipher, its nonce, and the encrypted
//! profile. Events carry one and the fold keeps one on each user, so it sits below both; sealing
//! and opening (the keys and the ciphers) are `seal`'s.

/// A profile sealed under its user's key: the postcard-encoded profile, encrypted, with its
/// 16-byte tag, and the random nonce it was sealed with.
#[derive(Clone, PartialEq, Eq)]
pub enum Sealed {
    /// AES-256-GCM: what this build writes.
    Aes256Gcm {
        /// A random 96-bit nonce.
        nonce: [u8; 12],
        /// The encrypted profile and its tag.
        ciphertext: Vec<u8>,
    },
    /// XChaCha20-Poly1305: what builds before AES-GCM wrote; opened, never written.
    XChaCha20Poly1305 {
        /// A random 192-bit nonce (boxed: every user in memory keeps its sealed profile, and
        /// the nonce inline would make every one of them 8 bytes larger).
        nonce: Box<[u8; 24]>,
        /// The encrypted profile and its tag.
        ciphertext: Vec<u8>,
    },
}

// A user keeps its sealed profile beside the readable one: keep it small.
const _: () = assert!(std::mem::size_of::<Option<Sealed>>() <= 40);

impl Sealed {
    /// The encrypted profile and its tag.
    pub fn ciphertext(&self) -> &[u8] {
        match self {
            Sealed::Aes256Gcm { ciphertext, .. } | Sealed::XChaCha20Poly1305 { ciphertext, .. } => ciphertext,
        }
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cipher = match self {
            Sealed::Aes256Gcm { .. } => "AES-256-GCM",
            Sealed::XChaCha20Poly1305 { .. } => "XChaCha20-Poly1305",
        };
        write!(f, "Sealed({cipher}, {} bytes)", self.ciphertext().len())
    }
}
