//! API tokens: random bearer secrets, shown once, stored only as hashes in
//! `<data-dir>/tokens.json`, compared in constant time, revocable.
//!
//! The file lives beside the log, not in it: the running server holds the log exclusively, and
//! `idpsync token create` must work while it runs. Every change rewrites the file atomically
//! (temporary file, fsync, rename, fsync of the directory; mode 0600), under a lock file so two
//! writers never lose each other's change. The server's [`TokenAuthenticator`] notices a
//! changed file (at most a second late, or at once when it sees an unknown token), so a new
//! token works and a revoked one stops working without a restart.
//!
//! Replicas on one database keep their tokens in the log store instead (`shared_tokens`), so
//! that a token works on every replica; the records and their checks are the same.
//!
//! A secret is `idps_` followed by 64 hex digits: 256 random bits. The file keeps
//! `BLAKE3-derive-key("idpsync api token v1", secret)`; a leaked file lets nobody in.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use idpsync_engine::ids::{TenantId, Timestamp, TokenId};
use idpsync_scim::{Authenticator, Principal};
use idpsync_storage::private_files;
use serde::{Deserialize, Serialize};

/// The file name of the token store inside the data directory.
pub const TOKENS_FILE: &str = "tokens.json";
/// The file name of the bootstrap token inside the data directory.
pub const BOOTSTRAP_TOKEN_FILE: &str = "bootstrap-token";
/// The prefix of every secret, so that a leaked one is easy to recognise and scan for.
pub const SECRET_PREFIX: &str = "idps_";
const HASH_CONTEXT: &str = "idpsync api token v1";
const FORMAT_VERSION: u32 = 1;
/// How long a lock file may stand before it is taken for a crashed writer's.
const LOCK_STALE_AFTER: Duration = Duration::from_secs(30);
/// How often the server looks at the file for changes, at most.
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_millis(500);

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TokenKind {
    /// Provision users and groups of its tenant over SCIM.
    Scim,
    /// Use the management API (`/api/v1`) for its tenant: bindings, queries, the change
    /// stream, audits, integrations and erasure.
    Admin,
}

impl TokenKind {
    /// The kind's name on the command line and in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Scim => "scim",
            TokenKind::Admin => "admin",
        }
    }
}

/// One token as stored: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Its id, recorded in the events it causes.
    pub id: TokenId,
    /// The tenant it gives access to.
    pub tenant: TenantId,
    /// A name for people (`entra-prod`).
    pub name: String,
    /// What it may do.
    pub kind: TokenKind,
    /// When it was created.
    pub created: Timestamp,
    /// When it was revoked, if it was.
    pub revoked: Option<Timestamp>,
    /// The hex BLAKE3 derived hash of the secret.
    hash: String,
}

impl TokenRecord {
    /// Whether it still opens the door.
    pub fn is_active(&self) -> bool {
        self.revoked.is_none()
    }

    /// A new token of `kind` for `tenant`, and its secret, which is never stored.
    pub(crate) fn generate(
        tenant: &TenantId,
        name: &str,
        kind: TokenKind,
    ) -> Result<(TokenRecord, String), TokenError> {
        if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(TokenError::InvalidName);
        }
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let secret = format!("{SECRET_PREFIX}{}", hex(&random));
        let record = TokenRecord {
            id: TokenId::new(),
            tenant: tenant.clone(),
            name: name.to_owned(),
            kind,
            created: Timestamp::now(),
            revoked: None,
            hash: hash_secret(&secret).to_hex().to_string(),
        };
        Ok((record, secret))
    }

    /// Marks it revoked now, unless it already is.
    pub(crate) fn revoke(&mut self) {
        if self.revoked.is_none() {
            self.revoked = Some(Timestamp::now());
        }
    }
}

/// The index of the token among `tokens` with the id `id_or_name`, or of the only one with that
/// name.
pub(crate) fn find_one(tokens: &[TokenRecord], id_or_name: &str) -> Result<usize, TokenError> {
    let by_id = id_or_name.parse::<TokenId>().ok();
    let matching: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, token)| Some(token.id) == by_id || token.name == id_or_name)
        .map(|(index, _)| index)
        .collect();
    match matching.as_slice() {
        [] => Err(TokenError::NotFound(id_or_name.to_owned())),
        [index] => Ok(*index),
        _ => Err(TokenError::Ambiguous(id_or_name.to_owned())),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFileContents {
    version: u32,
    tokens: Vec<TokenRecord>,
}

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("token store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a token store this version understands.
    #[error("token store {path} is damaged: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No token has this id or name.
    #[error("no token {0:?}")]
    NotFound(String),
    /// Several tokens have this name; use the id.
    #[error("several tokens are named {0:?}; revoke by id")]
    Ambiguous(String),
    /// The name is empty or too long.
    #[error("a token name must have 1 to 128 characters, no control characters")]
    InvalidName,
    /// Another writer holds the lock for too long.
    #[error("token store {0} is locked by another writer")]
    Locked(PathBuf),
    /// The log store that keeps the tokens of replicas failed, or holds a token that does not
    /// decode.
    #[error("tokens in the log store: {0}")]
    Store(#[from] idpsync_storage::StoreError),
}

/// The token store of a data directory.
#[derive(Clone, Debug)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// The store in `data_dir` (the file is created on the first token).
    pub fn new(data_dir: &Path) -> TokenStore {
        TokenStore {
            path: data_dir.join(TOKENS_FILE),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token, revoked ones included, in creation order.
    pub fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        Ok(self.read()?.tokens)
    }

    /// Creates a token and returns it with its secret, which is never stored and cannot be
    /// shown again.
    pub fn create(&self, tenant: &TenantId, name: &str, kind: TokenKind) -> Result<(TokenRecord, String), TokenError> {
        let (record, secret) = TokenRecord::generate(tenant, name, kind)?;
        self.update(|contents| {
            contents.tokens.push(record.clone());
            Ok(())
        })?;
        Ok((record, secret))
    }

    /// Revokes the token with this id, or the only token with this name; returns it.
    pub fn revoke(&self, id_or_name: &str) -> Result<TokenRecord, TokenError> {
        let mut revoked = None;
        self.update(|contents| {
            let index = find_one(&contents.tokens, id_or_name)?;
            let token = &mut contents.tokens[index];
            token.revoke();
            revoked = Some(token.clone());
            Ok(())
        })?;
        revoked.ok_or_else(|| TokenError::NotFound(id_or_name.to_owned()))
    }

    fn io(&self, path: &Path, source: std::io::Error) -> TokenError {
        TokenError::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn read(&self) -> Result<TokenFileContents, TokenError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TokenFileContents {
                    version: FORMAT_VERSION,
                    tokens: Vec::new(),
                });
            }
            Err(error) => return Err(self.io(&self.path, error)),
        };
        let contents: TokenFileContents = serde_json::from_slice(&bytes).map_err(|error| TokenError::Corrupt {
            path: self.path.clone(),
            reason: error.to_string(),
        })?;
        if contents.version != FORMAT_VERSION {
            return Err(TokenError::Corrupt {
                path: self.path.clone(),
                reason: format!(
                    "format version {} (this build reads {FORMAT_VERSION})",
                    contents.version
                ),
            });
        }
        Ok(contents)
    }

    /// Reads, changes and atomically rewrites the file under the lock.
    fn update(&self, change: impl FnOnce(&mut TokenFileContents) -> Result<(), TokenError>) -> Result<(), TokenError> {
        let _lock = self.lock()?;
        let mut contents = self.read()?;
        change(&mut contents)?;
        let bytes = serde_json::to_vec_pretty(&contents).map_err(|error| TokenError::Corrupt {
            path: self.path.clone(),
            reason: error.to_string(),
        })?;
        write_atomically(&self.path, &bytes).map_err(|error| self.io(&self.path, error))
    }

    fn lock(&self) -> Result<LockFile, TokenError> {
        let path = self.path.with_extension("lock");
        if let Some(parent) = path.parent() {
            private_files::create_dir_all(parent).map_err(|error| self.io(parent, error))?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match private_files::file_options().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(LockFile { path }),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&path)
                        .and_then(|metadata| metadata.modified())
                        .ok()
                        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                        .is_some_and(|age| age > LOCK_STALE_AFTER);
                    if stale {
                        tracing::warn!(path = %path.display(), "removing a stale token store lock");
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    if Instant::now() > deadline {
                        return Err(TokenError::Locked(self.path.clone()));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(error) => return Err(self.io(&path, error)),
            }
        }
    }
}

/// Holds the store's lock file; removes it when dropped.
struct LockFile {
    path: PathBuf,
}

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a part:
/// a temporary file (mode 0600) in the same directory, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let directory = path.parent().unwrap_or_else(|| Path::new("."));
    private_files::create_dir_all(directory)?;
    let mut random = [0u8; 8];
    rand::fill(&mut random);
    let file_name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let temporary = directory.join(format!(".{file_name}.{}.tmp", hex(&random)));
    let mut options = private_files::file_options();
    options.write(true).create_new(true);
    let result = (|| {
        let mut file = options.open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(directory)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn hash_secret(secret: &str) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_derive_key(HASH_CONTEXT);
    hasher.update(secret.as_bytes());
    hasher.finalize()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The active tokens of one kind as the server checks them.
struct Loaded {
    /// (hash, principal) of each active SCIM token.
    tokens: Vec<(blake3::Hash, Principal)>,
    /// What the file looked like when read, to notice changes.
    stamp: Option<FileStamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    modified: Option<SystemTime>,
    length: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        length: metadata.len(),
        inode,
    })
}

/// Where a [`TokenAuthenticator`] reads its tokens.
enum Source {
    /// The data directory's file, re-read when it changes.
    File(TokenStore),
    /// The log store's metadata, shared by replicas: re-read every [`RELOAD_INTERVAL`] by a
    /// task of its own (`shared_tokens`).
    Shared,
}

/// Checks bearer tokens of one kind against the token store, re-reading it when it changes.
pub struct TokenAuthenticator {
    source: Source,
    /// The kind of token it accepts: a SCIM token never opens the management API, nor an
    /// admin token SCIM.
    kind: TokenKind,
    loaded: RwLock<Loaded>,
    /// When the authenticator was made: the origin of `last_check_ms`.
    started: Instant,
    /// When the file was last looked at, in milliseconds since `started`. An atomic, not a
    /// lock: every request reads it, and only the one that wins the swap looks at the file.
    last_check_ms: AtomicU64,
}

impl TokenAuthenticator {
    /// Loads the store's SCIM tokens.
    pub fn new(store: TokenStore) -> Result<TokenAuthenticator, TokenError> {
        TokenAuthenticator::of_kind(store, TokenKind::Scim)
    }

    /// Loads the store's admin tokens, for the management API.
    pub fn admin(store: TokenStore) -> Result<TokenAuthenticator, TokenError> {
        TokenAuthenticator::of_kind(store, TokenKind::Admin)
    }

    fn of_kind(store: TokenStore, kind: TokenKind) -> Result<TokenAuthenticator, TokenError> {
        let authenticator = TokenAuthenticator::with_source(Source::File(store), kind);
        authenticator.reload()?;
        Ok(authenticator)
    }

    /// An authenticator of `kind` with no tokens yet, for the shared tokens to fill
    /// ([`TokenAuthenticator::load`]).
    pub(crate) fn empty_shared(kind: TokenKind) -> TokenAuthenticator {
        TokenAuthenticator::with_source(Source::Shared, kind)
    }

    fn with_source(source: Source, kind: TokenKind) -> TokenAuthenticator {
        TokenAuthenticator {
            kind,
            loaded: RwLock::new(Loaded {
                tokens: Vec::new(),
                stamp: None,
            }),
            source,
            started: Instant::now(),
            last_check_ms: AtomicU64::new(0),
        }
    }

    fn reload(&self) -> Result<(), TokenError> {
        let Source::File(store) = &self.source else {
            return Ok(());
        };
        let stamp = stamp(store.path());
        self.load(store.list()?, stamp);
        Ok(())
    }

    /// Takes `tokens` as the ones it checks (those of its kind, not revoked).
    pub(crate) fn load(&self, tokens: Vec<TokenRecord>, stamp: Option<FileStamp>) {
        let tokens = tokens
            .into_iter()
            .filter(|token| token.is_active() && token.kind == self.kind)
            .filter_map(|token| {
                let hash = blake3::Hash::from_hex(&token.hash).ok()?;
                Some((
                    hash,
                    Principal {
                        tenant: token.tenant,
                        token: token.id,
                    },
                ))
            })
            .collect();
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Loaded { tokens, stamp };
    }

    /// Re-reads the file if it changed; `force` skips the bound of one look per [`RELOAD_INTERVAL`].
    fn refresh(&self, force: bool) {
        let Source::File(store) = &self.source else {
            return;
        };
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last_ms = self.last_check_ms.load(Ordering::Relaxed);
        let interval_ms = u64::try_from(RELOAD_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if !force && now_ms.saturating_sub(last_ms) < interval_ms {
            return;
        }
        if !force
            && self
                .last_check_ms
                .compare_exchange(last_ms, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.last_check_ms.store(now_ms, Ordering::Relaxed);
        let current = stamp(store.path());
        if current == self.loaded.read().unwrap_or_else(|p| p.into_inner()).stamp {
            return;
        }
        if let Err(error) = self.reload() {
            // Keep the tokens already loaded: a damaged file must not lock everyone out.
            tracing::error!(%error, "cannot re-read the token store; keeping the tokens loaded before");
        }
    }

    fn find(&self, hash: &blake3::Hash) -> Option<Principal> {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        // `blake3::Hash` compares in constant time; every token is compared, so the time
        // taken does not tell which one (or whether one) matched.
        let mut found = None;
        for (candidate, principal) in &loaded.tokens {
            if candidate == hash {
                found = Some(principal.clone());
            }
        }
        found
    }
}

impl TokenAuthenticator {
    /// The tenant and token `secret` stands for (what [`Authenticator::authenticate`] answers:
    /// the check reads only memory, and the token file when it changed).
    pub fn authenticate(&self, secret: &str) -> Option<Principal> {
        self.refresh(false);
        let hash = hash_secret(secret);
        if let Some(principal) = self.find(&hash) {
            return Some(principal);
        }
        if secret.starts_with(SECRET_PREFIX) {
            self.refresh(true);
            return self.find(&hash);
        }
        None
    }
}

#[idpsync_scim::async_trait]
impl Authenticator for TokenAuthenticator {
    async fn authenticate(&self, secret: &str) -> Option<Principal> {
        TokenAuthenticator::authenticate(self, secret)
    }
}

/// On a token store that has never held a token (a first start), creates a SCIM token for the
/// `default` tenant and writes its secret to `<data-dir>/bootstrap-token` (mode 0600). Returns
/// the file's path when it made one.
///
/// A store whose tokens were all revoked gets none: revoking every token is how an operator
/// shuts the door, and a restart must not open it again. [`bootstrap_again`] does, on request.
pub fn bootstrap(data_dir: &Path) -> Result<Option<PathBuf>, TokenError> {
    if !TokenStore::new(data_dir).list()?.is_empty() {
        return Ok(None);
    }
    bootstrap_again(data_dir).map(Some)
}

/// Creates a new SCIM token for the `default` tenant whatever the store holds, and writes its
/// secret to `<data-dir>/bootstrap-token` (mode 0600), replacing an older one there.
pub fn bootstrap_again(data_dir: &Path) -> Result<PathBuf, TokenError> {
    let store = TokenStore::new(data_dir);
    let (_, secret) = store.create(&TenantId::default_tenant(), "bootstrap", TokenKind::Scim)?;
    write_bootstrap_secret(data_dir, &secret)
}

/// Writes a bootstrap token's secret to `<data-dir>/bootstrap-token` (mode 0600).
pub(crate) fn write_bootstrap_secret(data_dir: &Path, secret: &str) -> Result<PathBuf, TokenError> {
    let path = data_dir.join(BOOTSTRAP_TOKEN_FILE);
    write_atomically(&path, format!("{secret}\n").as_bytes()).map_err(|source| TokenError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_tokens_authenticate_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let tenant = TenantId::new("acme").unwrap();
        let (record, secret) = store.create(&tenant, "entra", TokenKind::Scim).unwrap();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert_eq!(secret.len(), SECRET_PREFIX.len() + 64);
        let authenticator = TokenAuthenticator::new(store.clone()).unwrap();
        assert_eq!(
            authenticator.authenticate(&secret),
            Some(Principal {
                tenant: tenant.clone(),
                token: record.id
            })
        );
        assert_eq!(authenticator.authenticate("idps_nope"), None);
        assert_eq!(authenticator.authenticate(&secret[..secret.len() - 1]), None);
        store.revoke(&record.id.to_string()).unwrap();
        // Revocation is noticed within the reload interval.
        std::thread::sleep(RELOAD_INTERVAL + Duration::from_millis(50));
        assert_eq!(authenticator.authenticate(&secret), None);
    }

    /// Hardening issue, must-fix 9: bootstrap made a new token at every start that found the
    /// `default` tenant without one, so revoking every token did not keep clients out past a
    /// restart.
    #[test]
    fn bootstrap_makes_a_token_on_a_first_start_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = bootstrap(dir.path()).unwrap().expect("a first start gets a token");
        let store = TokenStore::new(dir.path());
        let first = store.list().unwrap();
        assert_eq!(first.len(), 1);
        assert!(std::fs::read_to_string(&path).unwrap().starts_with(SECRET_PREFIX));
        assert_eq!(bootstrap(dir.path()).unwrap(), None, "one token is enough");
        store.revoke(&first[0].id.to_string()).unwrap();
        assert_eq!(bootstrap(dir.path()).unwrap(), None, "revoked tokens stay revoked");
        bootstrap_again(dir.path()).unwrap();
        assert_eq!(
            store.list().unwrap().iter().filter(|token| token.is_active()).count(),
            1
        );
    }

    #[test]
    fn a_token_made_while_serving_works_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let authenticator = TokenAuthenticator::new(store.clone()).unwrap();
        let (_, secret) = store
            .create(&TenantId::default_tenant(), "late", TokenKind::Scim)
            .unwrap();
        assert!(authenticator.authenticate(&secret).is_some());
    }

    #[test]
    fn the_file_keeps_no_secret_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let (_, secret) = store.create(&TenantId::default_tenant(), "x", TokenKind::Scim).unwrap();
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(&secret[SECRET_PREFIX.len()..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn revoke_by_name_needs_a_unique_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        store
            .create(&TenantId::default_tenant(), "twin", TokenKind::Scim)
            .unwrap();
        store
            .create(&TenantId::new("other").unwrap(), "twin", TokenKind::Scim)
            .unwrap();
        assert!(matches!(store.revoke("twin"), Err(TokenError::Ambiguous(_))));
        assert!(matches!(store.revoke("nobody"), Err(TokenError::NotFound(_))));
        assert!(matches!(
            store.create(&TenantId::default_tenant(), " ", TokenKind::Scim),
            Err(TokenError::InvalidName)
        ));
    }

    #[test]
    fn scim_and_admin_tokens_open_only_their_own_door() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let tenant = TenantId::default_tenant();
        let (_, scim) = store.create(&tenant, "idp", TokenKind::Scim).unwrap();
        let (admin_record, admin) = store.create(&tenant, "mgmt", TokenKind::Admin).unwrap();
        let scim_door = TokenAuthenticator::new(store.clone()).unwrap();
        let admin_door = TokenAuthenticator::admin(store).unwrap();
        assert!(scim_door.authenticate(&scim).is_some());
        assert_eq!(scim_door.authenticate(&admin), None);
        assert_eq!(admin_door.authenticate(&scim), None);
        assert_eq!(admin_door.authenticate(&admin).map(|p| p.token), Some(admin_record.id));
    }

    #[test]
    fn bootstrap_happens_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = bootstrap(dir.path()).unwrap().expect("a first token");
        let secret = fs::read_to_string(&path).unwrap();
        let authenticator = TokenAuthenticator::new(TokenStore::new(dir.path())).unwrap();
        assert!(authenticator.authenticate(secret.trim()).is_some());
        assert_eq!(bootstrap(dir.path()).unwrap(), None);
    }
}
