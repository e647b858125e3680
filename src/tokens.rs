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
//!
//! A token may have an expiry: past it, it is refused exactly as a revoked one. When a token
//! last authenticated is noted in memory ([`TokenUses`]) and written to its store at most once
//! per [`crate::token_book::USE_FLUSH_INTERVAL`] and when the server stops, never once per
//! request.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// When it stops opening the door, if ever (absent in files written before expiries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
    /// When it last authenticated, as last written: uses are written at most once per
    /// [`crate::token_book::USE_FLUSH_INTERVAL`], so this may be that much behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Timestamp>,
    /// The hex BLAKE3 derived hash of the secret.
    hash: String,
}

/// Where a token stands at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    /// It opens the door.
    Active,
    /// It was revoked at this moment.
    Revoked(Timestamp),
    /// It expired at this moment.
    Expired(Timestamp),
}

impl TokenStatus {
    /// `active`, `revoked` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Revoked(_) => "revoked",
            TokenStatus::Expired(_) => "expired",
        }
    }
}

impl TokenRecord {
    /// Whether it still opens the door: not revoked, not expired.
    pub fn is_active(&self) -> bool {
        self.status(Timestamp::now()) == TokenStatus::Active
    }

    /// Where it stands at `now` (a revocation tells more than an expiry, and wins).
    pub fn status(&self, now: Timestamp) -> TokenStatus {
        match (self.revoked, self.expires) {
            (Some(revoked), _) => TokenStatus::Revoked(revoked),
            (None, Some(expires)) if expires <= now => TokenStatus::Expired(expires),
            _ => TokenStatus::Active,
        }
    }

    /// A new token of `kind` for `tenant`, valid until `expires` if given (which must be
    /// later than now), and its secret, which is never stored.
    pub(crate) fn generate(
        tenant: &TenantId,
        name: &str,
        kind: TokenKind,
        expires: Option<Timestamp>,
    ) -> Result<(TokenRecord, String), TokenError> {
        if name.trim().is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(TokenError::InvalidName);
        }
        let created = Timestamp::now();
        if let Some(expires) = expires
            && expires <= created
        {
            return Err(TokenError::InvalidExpiry(format!("{expires} is not in the future")));
        }
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let secret = format!("{SECRET_PREFIX}{}", hex(&random));
        let record = TokenRecord {
            id: TokenId::new(),
            tenant: tenant.clone(),
            name: name.to_owned(),
            kind,
            created,
            revoked: None,
            expires,
            last_used: None,
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

    /// Takes `at` as its last use if it is later than the one recorded; returns whether it was.
    pub(crate) fn used_at(&mut self, at: Timestamp) -> bool {
        if self.last_used.is_some_and(|last| last >= at) {
            return false;
        }
        self.last_used = Some(at);
        true
    }
}

/// Parses when a new token expires: a moment (RFC 3339 or a plain date, midnight UTC, as
/// [`Timestamp::parse_moment`] reads them) or a time from `now` such as `90d`, `12h` or
/// `1w 2d`. The moment must be later than `now`.
pub fn parse_expiry(text: &str, now: Timestamp) -> Result<Timestamp, TokenError> {
    let invalid = |reason: String| TokenError::InvalidExpiry(reason);
    let expires = match Timestamp::parse_moment(text) {
        Ok(moment) => moment,
        Err(_) => {
            let span = humantime::parse_duration(text.trim()).map_err(|_| {
                invalid(format!(
                    "{text:?} is neither a moment (2027-01-01, 2027-01-01T09:00:00Z) nor a duration (90d, 12h)"
                ))
            })?;
            let micros = i64::try_from(span.as_micros()).map_err(|_| invalid(format!("{text:?} is too far")))?;
            Timestamp(
                now.0
                    .checked_add(micros)
                    .ok_or_else(|| invalid(format!("{text:?} is too far")))?,
            )
        }
    };
    if expires <= now {
        return Err(invalid(format!("{expires} is not in the future")));
    }
    Ok(expires)
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
    /// The expiry is not a moment or duration, or not in the future.
    #[error("invalid token expiry: {0}")]
    InvalidExpiry(String),
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

    /// Creates a token that never expires and returns it with its secret, which is never
    /// stored and cannot be shown again.
    pub fn create(&self, tenant: &TenantId, name: &str, kind: TokenKind) -> Result<(TokenRecord, String), TokenError> {
        self.create_expiring(tenant, name, kind, None)
    }

    /// Creates a token that stops working at `expires` (if given, later than now) and returns
    /// it with its secret, which is never stored and cannot be shown again.
    pub fn create_expiring(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: TokenKind,
        expires: Option<Timestamp>,
    ) -> Result<(TokenRecord, String), TokenError> {
        let (record, secret) = TokenRecord::generate(tenant, name, kind, expires)?;
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

    /// Writes the last uses of tokens (one rewrite of the file for all of them); a token that
    /// is gone is skipped, an earlier use than the one recorded changes nothing.
    pub fn record_uses(&self, uses: &HashMap<TokenId, Timestamp>) -> Result<(), TokenError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.update(|contents| {
            for token in &mut contents.tokens {
                if let Some(at) = uses.get(&token.id) {
                    token.used_at(*at);
                }
            }
            Ok(())
        })
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

/// One token as the server checks it.
struct Checked {
    hash: blake3::Hash,
    principal: Principal,
    expires: Option<Timestamp>,
}

/// The active tokens of one kind as the server checks them.
struct Loaded {
    /// The tokens of the kind, not revoked (expired ones too: they are refused at the check,
    /// so that one expires to the second without a reload).
    tokens: Vec<Checked>,
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
    /// The uses not written yet.
    uses: Arc<TokenUses>,
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
            uses: Arc::default(),
        }
    }

    /// The uses of its tokens not yet written to their store, for a
    /// [`crate::token_book::UseRecorder`] to write.
    pub fn uses(&self) -> Arc<TokenUses> {
        Arc::clone(&self.uses)
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
            .filter(|token| token.revoked.is_none() && token.kind == self.kind)
            .filter_map(|token| {
                let hash = blake3::Hash::from_hex(&token.hash).ok()?;
                Some(Checked {
                    hash,
                    principal: Principal {
                        tenant: token.tenant,
                        token: token.id,
                    },
                    expires: token.expires,
                })
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

    /// The principal of the unexpired token with this hash; notes the use.
    fn find(&self, hash: &blake3::Hash) -> Option<Principal> {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        // `blake3::Hash` compares in constant time; every token is compared, so the time
        // taken does not tell which one (or whether one) matched.
        let mut found = None;
        for checked in &loaded.tokens {
            if checked.hash == *hash {
                found = Some(checked);
            }
        }
        let found = found?;
        let now = Timestamp::now();
        if found.expires.is_some_and(|expires| expires <= now) {
            return None;
        }
        self.uses.note(found.principal.token, now);
        Some(found.principal.clone())
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

/// When tokens last authenticated, kept in memory until written to their store: each token's
/// latest use only, so however many requests a token makes, writing its uses is one change.
#[derive(Debug, Default)]
pub struct TokenUses {
    latest: Mutex<HashMap<TokenId, Timestamp>>,
}

impl TokenUses {
    /// Notes that `token` authenticated at `at`.
    pub fn note(&self, token: TokenId, at: Timestamp) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let entry = latest.entry(token).or_insert(at);
        if *entry < at {
            *entry = at;
        }
    }

    /// The uses noted since the last take, which are forgotten here.
    pub fn take(&self) -> HashMap<TokenId, Timestamp> {
        std::mem::take(&mut *self.latest.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Notes again uses that were taken but could not be written, so the next write has them.
    pub fn restore(&self, uses: HashMap<TokenId, Timestamp>) {
        for (token, at) in uses {
            self.note(token, at);
        }
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
    fn an_expired_token_is_refused_as_a_revoked_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let tenant = TenantId::default_tenant();
        let expires = Timestamp(Timestamp::now().0 + 400_000);
        let (record, secret) = store
            .create_expiring(&tenant, "short", TokenKind::Admin, Some(expires))
            .unwrap();
        let (_, lasting) = store.create(&tenant, "lasting", TokenKind::Admin).unwrap();
        let door = TokenAuthenticator::admin(store.clone()).unwrap();
        assert_eq!(door.authenticate(&secret).map(|p| p.token), Some(record.id));
        assert!(record.is_active());
        std::thread::sleep(Duration::from_millis(450));
        // No reload needed: the expiry is checked at each authentication.
        assert_eq!(door.authenticate(&secret), None);
        assert!(door.authenticate(&lasting).is_some());
        let listed = store.list().unwrap();
        assert_eq!(listed[0].status(Timestamp::now()), TokenStatus::Expired(expires));
        assert!(!listed[0].is_active());
        // A revocation tells more than the expiry.
        store.revoke("short").unwrap();
        assert!(matches!(
            store.list().unwrap()[0].status(Timestamp::now()),
            TokenStatus::Revoked(_)
        ));
    }

    #[test]
    fn an_expiry_in_the_past_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let past = Timestamp(Timestamp::now().0 - 1);
        assert!(matches!(
            store.create_expiring(&TenantId::default_tenant(), "late", TokenKind::Scim, Some(past)),
            Err(TokenError::InvalidExpiry(_))
        ));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn expiries_are_moments_or_times_from_now() {
        let now = Timestamp::parse_rfc3339("2026-12-07T10:00:00Z").unwrap();
        let at = |text: &str| parse_expiry(text, now).map(Timestamp::to_rfc3339);
        assert_eq!(at("2027-01-01").unwrap(), "2027-01-01T00:00:00.000000Z");
        assert_eq!(at("2027-01-01T09:30:00+01:00").unwrap(), "2027-01-01T08:30:00.000000Z");
        assert_eq!(at("90d").unwrap(), "2027-03-07T10:00:00.000000Z");
        assert_eq!(at(" 12h ").unwrap(), "2026-12-07T22:00:00.000000Z");
        assert_eq!(at("1w 2d").unwrap(), "2026-12-16T10:00:00.000000Z");
        for bad in [
            "",
            "soon",
            "2026-12-01",
            "2026-12-07T10:00:00Z",
            "0s",
            "-3d",
            "2027-13-01",
        ] {
            assert!(
                matches!(parse_expiry(bad, now), Err(TokenError::InvalidExpiry(_))),
                "{bad:?} must be refused"
            );
        }
    }

    /// Token files written before expiries and last uses still load, and keep working.
    #[test]
    fn a_token_file_without_expiries_or_last_uses_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let secret = format!("{SECRET_PREFIX}{}", "ab".repeat(32));
        let id = TokenId::new();
        // The file as the previous format wrote it.
        let old = serde_json::json!({
            "version": 1,
            "tokens": [{
                "id": id,
                "tenant": "default",
                "name": "old",
                "kind": "scim",
                "created": 1_700_000_000_000_000_i64,
                "revoked": null,
                "hash": hash_secret(&secret).to_hex().to_string(),
            }],
        });
        fs::write(store.path(), serde_json::to_vec_pretty(&old).unwrap()).unwrap();
        let listed = store.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].expires, listed[0].last_used), (id, None, None));
        assert!(listed[0].is_active());
        let door = TokenAuthenticator::new(store.clone()).unwrap();
        assert_eq!(door.authenticate(&secret).map(|p| p.token), Some(id));
        // A last use is added to it; the rest stays as it was.
        store.record_uses(&door.uses().take()).unwrap();
        let rewritten: serde_json::Value = serde_json::from_slice(&fs::read(store.path()).unwrap()).unwrap();
        assert!(rewritten["tokens"][0]["last_used"].is_i64());
        assert_eq!(rewritten["tokens"][0]["hash"], old["tokens"][0]["hash"]);
    }

    #[test]
    fn uses_are_noted_in_memory_latest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let (record, secret) = store.create(&TenantId::default_tenant(), "x", TokenKind::Scim).unwrap();
        let door = TokenAuthenticator::new(store.clone()).unwrap();
        assert!(door.uses().take().is_empty());
        let before = Timestamp::now();
        for _ in 0..10 {
            door.authenticate(&secret).unwrap();
        }
        assert_eq!(door.authenticate("idps_unknown"), None);
        let uses = door.uses().take();
        assert_eq!(uses.len(), 1, "one entry per token, however many requests");
        assert!(uses[&record.id] >= before);
        assert!(door.uses().take().is_empty(), "taken uses are gone");
        // Nothing was written per request.
        assert_eq!(store.list().unwrap()[0].last_used, None);
        door.uses().restore(uses.clone());
        store.record_uses(&door.uses().take()).unwrap();
        assert_eq!(store.list().unwrap()[0].last_used, Some(uses[&record.id]));
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
