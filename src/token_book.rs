//! [`TokenBook`]: where a service's tokens are kept — the data directory's file
//! ([`TokenStore`]) or, for replicas on one database, the store's metadata ([`SharedTokens`])
//! — behind one set of calls for everything that lists, creates and revokes tokens (the CLI,
//! the admin console, the management API's audits); and [`UseRecorder`], which writes when
//! tokens were last used.
//!
//! Uses are noted in memory by the authenticators ([`TokenUses`]) and written by the recorder
//! every [`USE_FLUSH_INTERVAL`] and once more when the server stops: at most one write per
//! token per interval, whatever the request rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use idpsync_engine::ids::{TenantId, Timestamp, TokenId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::shared_tokens::SharedTokens;
use crate::tokens::{TokenError, TokenKind, TokenRecord, TokenStore, TokenUses};

/// How often the uses of tokens are written to their store, at most.
pub const USE_FLUSH_INTERVAL: Duration = Duration::from_secs(60);

/// Where a service's tokens are kept.
#[derive(Clone)]
pub enum TokenBook {
    /// The data directory's `tokens.json`: one process serves the log.
    File(TokenStore),
    /// The shared store's metadata: every replica checks the same tokens.
    Shared(SharedTokens),
}

/// Runs a call on the token file off the async workers: it may wait for the file's lock.
async fn on_file<T: Send + 'static>(
    store: &TokenStore,
    call: impl FnOnce(&TokenStore) -> Result<T, TokenError> + Send + 'static,
) -> Result<T, TokenError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .unwrap_or_else(|panicked| std::panic::resume_unwind(panicked.into_panic()))
}

impl TokenBook {
    /// Every token, revoked and expired ones included, in creation order.
    pub async fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        match self {
            TokenBook::File(store) => on_file(store, TokenStore::list).await,
            TokenBook::Shared(shared) => shared.list().await,
        }
    }

    /// Creates a token that stops working at `expires` (if given, later than now) and returns
    /// it with its secret, which is never stored and cannot be shown again.
    pub async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: TokenKind,
        expires: Option<Timestamp>,
    ) -> Result<(TokenRecord, String), TokenError> {
        match self {
            TokenBook::File(store) => {
                let (tenant, name) = (tenant.clone(), name.to_owned());
                on_file(store, move |store| store.create_expiring(&tenant, &name, kind, expires)).await
            }
            TokenBook::Shared(shared) => shared.create_expiring(tenant, name, kind, expires).await,
        }
    }

    /// Revokes the token with this id, or the only token with this name; returns it.
    pub async fn revoke(&self, id_or_name: &str) -> Result<TokenRecord, TokenError> {
        match self {
            TokenBook::File(store) => {
                let id_or_name = id_or_name.to_owned();
                on_file(store, move |store| store.revoke(&id_or_name)).await
            }
            TokenBook::Shared(shared) => shared.revoke(id_or_name).await,
        }
    }

    /// Writes when tokens were last used (a later use recorded meanwhile is kept).
    pub async fn record_uses(&self, uses: HashMap<TokenId, Timestamp>) -> Result<(), TokenError> {
        match self {
            TokenBook::File(store) => on_file(store, move |store| store.record_uses(&uses)).await,
            TokenBook::Shared(shared) => shared.record_uses(&uses).await,
        }
    }
}

/// Writes the uses the authenticators noted to the token book, every interval and at
/// [`UseRecorder::shutdown`].
pub struct UseRecorder {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl UseRecorder {
    /// Starts writing the uses of `sources` to `book` every `every` (the service:
    /// [`USE_FLUSH_INTERVAL`]).
    pub fn start(book: TokenBook, sources: Vec<Arc<TokenUses>>, every: Duration) -> UseRecorder {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => flush(&book, &sources).await,
                    _ = stopped.changed() => break,
                }
            }
            flush(&book, &sources).await;
        });
        UseRecorder { stop, task }
    }

    /// Writes the uses noted since the last write, and stops.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the token use recorder failed");
        }
    }
}

/// Writes the uses noted in `sources`; if the book cannot be written, they are noted again for
/// the next write.
async fn flush(book: &TokenBook, sources: &[Arc<TokenUses>]) {
    let mut uses: HashMap<TokenId, Timestamp> = HashMap::new();
    for source in sources {
        for (token, at) in source.take() {
            let latest = uses.entry(token).or_insert(at);
            *latest = (*latest).max(at);
        }
    }
    if uses.is_empty() {
        return;
    }
    let count = uses.len();
    if let Err(error) = book.record_uses(uses.clone()).await {
        tracing::warn!(%error, tokens = count, "cannot write when tokens were last used; trying again later");
        if let Some(first) = sources.first() {
            first.restore(uses);
        }
    }
}

#[cfg(test)]
mod tests {
    use idpsync_storage::MemoryStore;

    use super::*;
    use crate::tokens::TokenAuthenticator;

    /// Many requests of one token between two writes make one write, of the latest use; a
    /// token nobody used keeps no last use.
    async fn uses_are_coalesced_and_written(book: TokenBook, door: Arc<TokenAuthenticator>) {
        let tenant = TenantId::default_tenant();
        let (used, secret) = book.create(&tenant, "used", TokenKind::Scim, None).await.unwrap();
        let (idle, _) = book.create(&tenant, "idle", TokenKind::Scim, None).await.unwrap();
        // The shared store's authenticator sees new tokens at its next reload.
        tokio::time::sleep(crate::tokens::RELOAD_INTERVAL + Duration::from_millis(200)).await;
        let recorder = UseRecorder::start(book.clone(), vec![door.uses()], Duration::from_secs(3600));
        let before = Timestamp::now();
        for _ in 0..100 {
            assert!(door.authenticate(&secret).is_some());
        }
        let after = Timestamp::now();
        // Nothing is written per request: within the interval, the store has no use yet.
        let listed = book.list().await.unwrap();
        assert!(listed.iter().all(|token| token.last_used.is_none()), "{listed:?}");
        recorder.shutdown().await;
        let listed = book.list().await.unwrap();
        let used = listed.iter().find(|token| token.id == used.id).unwrap();
        let last = used.last_used.expect("written at shutdown");
        assert!(before <= last && last <= after, "{last} not within {before}..{after}");
        assert_eq!(listed.iter().find(|token| token.id == idle.id).unwrap().last_used, None);
        assert!(door.uses().take().is_empty(), "written uses are forgotten");
    }

    #[tokio::test]
    async fn the_file_gets_the_latest_use_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let door = Arc::new(TokenAuthenticator::new(store.clone()).unwrap());
        uses_are_coalesced_and_written(TokenBook::File(store), door).await;
    }

    #[tokio::test]
    async fn the_shared_store_gets_the_latest_use_once() {
        let shared = SharedTokens::new(Arc::new(MemoryStore::new()));
        let door = shared.authenticator(TokenKind::Scim).await.unwrap();
        uses_are_coalesced_and_written(TokenBook::Shared(shared), door).await;
    }

    #[tokio::test]
    async fn the_recorder_writes_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::new(dir.path());
        let book = TokenBook::File(store.clone());
        let (record, secret) = book
            .create(&TenantId::default_tenant(), "busy", TokenKind::Scim, None)
            .await
            .unwrap();
        let door = Arc::new(TokenAuthenticator::new(store).unwrap());
        let recorder = UseRecorder::start(book.clone(), vec![door.uses()], Duration::from_millis(100));
        door.authenticate(&secret).unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let listed = book.list().await.unwrap();
        assert!(
            listed
                .iter()
                .any(|token| token.id == record.id && token.last_used.is_some())
        );
        recorder.shutdown().await;
    }

    #[tokio::test]
    async fn an_earlier_use_never_replaces_a_later_one() {
        let shared = SharedTokens::new(Arc::new(MemoryStore::new()));
        let book = TokenBook::Shared(shared);
        let (record, _) = book
            .create(&TenantId::default_tenant(), "x", TokenKind::Admin, None)
            .await
            .unwrap();
        let later = Timestamp::now();
        let earlier = Timestamp(later.0 - 1_000_000);
        book.record_uses(HashMap::from([(record.id, later)])).await.unwrap();
        book.record_uses(HashMap::from([(record.id, earlier)])).await.unwrap();
        assert_eq!(book.list().await.unwrap()[0].last_used, Some(later));
    }
}
