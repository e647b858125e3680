//! [`SharedTokens`]: the API tokens of replicas that share one log store (PostgreSQL), kept in
//! the store's metadata, one entry per token (namespace `tokens`, key its id, value the
//! record as JSON: hashes, never secrets), so that a token made or revoked through any replica,
//! or with `idpsync token` on any machine, works or stops working on every replica.
//!
//! Each replica's authenticators re-read the entries every second (a task of their own): a new
//! token works, and a revoked one stops working, on every replica within about a second. A
//! revocation changes its entry by compare-and-set, so two revocations or a revocation and an
//! import never lose each other.
//!
//! The last use of each token is written by compare-and-set too, at most once per
//! [`crate::token_book::USE_FLUSH_INTERVAL`] per replica (see [`SharedTokens::record_uses`]).
//!
//! A replica that starts on a shared store with a `tokens.json` in its data directory (a
//! deployment that moved from redb) imports the tokens it holds; each token is imported once,
//! however many replicas start with a copy of the file.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use idpsync_engine::ids::{TenantId, Timestamp, TokenId};
use idpsync_storage::{LogStore, MetaEntry, StoreError};

use crate::tokens::{
    RELOAD_INTERVAL, TokenAuthenticator, TokenError, TokenKind, TokenRecord, TokenStore, find_one,
    write_bootstrap_secret,
};

/// The metadata namespace of tokens.
const NAMESPACE: &str = idpsync_storage::meta::namespaces::TOKENS;
/// How often a revocation or a use is tried again when another writer changed the token
/// meanwhile.
const CHANGE_TRIES: usize = 8;

/// The tokens kept in a shared log store.
#[derive(Clone)]
pub struct SharedTokens {
    store: Arc<dyn LogStore>,
}

impl SharedTokens {
    /// The tokens in `store`'s metadata.
    pub fn new(store: Arc<dyn LogStore>) -> SharedTokens {
        SharedTokens { store }
    }

    /// Every token, revoked ones included, in creation order.
    pub async fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let mut tokens = self
            .store
            .list_meta(NAMESPACE)
            .await?
            .iter()
            .map(|entry| decode(entry).map(|(token, _)| token))
            .collect::<Result<Vec<_>, _>>()?;
        tokens.sort_by_key(|token| (token.created, token.id));
        Ok(tokens)
    }

    /// Creates a token that never expires and returns it with its secret, which is never
    /// stored and cannot be shown again.
    pub async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: TokenKind,
    ) -> Result<(TokenRecord, String), TokenError> {
        self.create_expiring(tenant, name, kind, None).await
    }

    /// Creates a token that stops working at `expires` (if given, later than now) and returns
    /// it with its secret, which is never stored and cannot be shown again.
    pub async fn create_expiring(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: TokenKind,
        expires: Option<Timestamp>,
    ) -> Result<(TokenRecord, String), TokenError> {
        let (record, secret) = TokenRecord::generate(tenant, name, kind, expires)?;
        self.store
            .put_meta(NAMESPACE, &record.id.to_string(), None, encode(&record))
            .await?;
        Ok((record, secret))
    }

    /// Revokes the token with this id, or the only token with this name; returns it.
    pub async fn revoke(&self, id_or_name: &str) -> Result<TokenRecord, TokenError> {
        let mut tries = 0;
        loop {
            let entries = self.store.list_meta(NAMESPACE).await?;
            let decoded = entries.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
            let tokens: Vec<TokenRecord> = decoded.iter().map(|(token, _)| token.clone()).collect();
            let index = find_one(&tokens, id_or_name)?;
            let (mut token, version) = decoded[index].clone();
            token.revoke();
            match self
                .store
                .put_meta(NAMESPACE, &token.id.to_string(), Some(version), encode(&token))
                .await
            {
                Ok(_) => return Ok(token),
                Err(StoreError::MetaConflict { .. }) if tries < CHANGE_TRIES => tries += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Writes the last uses of tokens, each by compare-and-set on its entry (a revocation or
    /// another replica's use written meanwhile is kept: the later use wins). A token that is
    /// gone is skipped.
    pub async fn record_uses(&self, uses: &HashMap<TokenId, Timestamp>) -> Result<(), TokenError> {
        for (token, at) in uses {
            self.record_use(*token, *at).await?;
        }
        Ok(())
    }

    async fn record_use(&self, token: TokenId, at: Timestamp) -> Result<(), TokenError> {
        let key = token.to_string();
        let mut tries = 0;
        loop {
            let Some(entry) = self.store.get_meta(NAMESPACE, &key).await? else {
                return Ok(());
            };
            let (mut record, version) = decode(&entry)?;
            if !record.used_at(at) {
                return Ok(());
            }
            match self
                .store
                .put_meta(NAMESPACE, &key, Some(version), encode(&record))
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::MetaConflict { .. }) if tries < CHANGE_TRIES => tries += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Copies the tokens of a data directory's file that the store does not hold yet; returns
    /// how many it copied.
    pub async fn import(&self, file: &TokenStore) -> Result<usize, TokenError> {
        let mut imported = 0;
        for token in file.list()? {
            match self
                .store
                .put_meta(NAMESPACE, &token.id.to_string(), None, encode(&token))
                .await
            {
                Ok(_) => imported += 1,
                // Imported before, by this replica or another.
                Err(StoreError::MetaConflict { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(imported)
    }

    /// On a store that has never held a token (a first start), creates a SCIM token for the
    /// `default` tenant and writes its secret to `<data-dir>/bootstrap-token`; returns the
    /// file's path when it made one. As [`crate::tokens::bootstrap`], for shared tokens.
    pub async fn bootstrap(&self, data_dir: &std::path::Path) -> Result<Option<std::path::PathBuf>, TokenError> {
        if !self.list().await?.is_empty() {
            return Ok(None);
        }
        self.bootstrap_again(data_dir).await.map(Some)
    }

    /// Creates a new SCIM token for the `default` tenant and writes its secret to
    /// `<data-dir>/bootstrap-token`.
    pub async fn bootstrap_again(&self, data_dir: &std::path::Path) -> Result<std::path::PathBuf, TokenError> {
        let (_, secret) = self
            .create(&TenantId::default_tenant(), "bootstrap", TokenKind::Scim)
            .await?;
        write_bootstrap_secret(data_dir, &secret)
    }

    /// An authenticator of `kind`'s tokens, loaded now and re-read every second for as long
    /// as it is in use.
    pub async fn authenticator(&self, kind: TokenKind) -> Result<Arc<TokenAuthenticator>, TokenError> {
        let authenticator = Arc::new(TokenAuthenticator::empty_shared(kind));
        authenticator.load(self.list().await?, None);
        tokio::spawn(keep_loaded(self.clone(), Arc::downgrade(&authenticator)));
        Ok(authenticator)
    }
}

/// Re-reads the tokens into `authenticator` every [`RELOAD_INTERVAL`] until it is dropped. A
/// failed read keeps the tokens loaded before: an unreachable database must not lock everyone
/// out.
async fn keep_loaded(tokens: SharedTokens, authenticator: Weak<TokenAuthenticator>) {
    loop {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        let listed = tokens.list().await;
        let Some(authenticator) = authenticator.upgrade() else {
            return;
        };
        match listed {
            Ok(listed) => authenticator.load(listed, None),
            Err(error) => tracing::error!(%error, "cannot re-read the tokens; keeping the tokens loaded before"),
        }
    }
}

fn encode(token: &TokenRecord) -> Vec<u8> {
    serde_json::to_vec(token).expect("a token record always encodes")
}

fn decode(entry: &MetaEntry) -> Result<(TokenRecord, u64), TokenError> {
    let token = serde_json::from_slice(&entry.value).map_err(|error| StoreError::InvalidMeta {
        reason: format!("the token {} does not decode: {error}", entry.key),
    })?;
    Ok((token, entry.version))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use idpsync_storage::MemoryStore;

    use super::*;

    fn shared() -> SharedTokens {
        SharedTokens::new(Arc::new(MemoryStore::new()))
    }

    #[tokio::test]
    async fn shared_tokens_authenticate_until_revoked_everywhere() {
        let tokens = shared();
        let tenant = TenantId::new("acme").unwrap();
        // Two replicas' authenticators over one store.
        let one = tokens.authenticator(TokenKind::Scim).await.unwrap();
        let other = tokens.authenticator(TokenKind::Scim).await.unwrap();
        let admin = tokens.authenticator(TokenKind::Admin).await.unwrap();
        let (record, secret) = tokens.create(&tenant, "entra", TokenKind::Scim).await.unwrap();
        tokio::time::sleep(RELOAD_INTERVAL + Duration::from_millis(200)).await;
        for door in [&one, &other] {
            assert_eq!(
                door.authenticate(&secret).map(|p| (p.tenant, p.token)),
                Some((tenant.clone(), record.id))
            );
        }
        assert_eq!(admin.authenticate(&secret), None, "a SCIM token never opens the API");
        let revoked = tokens.revoke("entra").await.unwrap();
        assert!(!revoked.is_active());
        tokio::time::sleep(RELOAD_INTERVAL + Duration::from_millis(200)).await;
        assert_eq!(one.authenticate(&secret), None);
        assert_eq!(other.authenticate(&secret), None);
        // Nothing secret is stored.
        let listed = tokens.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        let stored = tokens.store.list_meta(NAMESPACE).await.unwrap();
        assert!(!String::from_utf8_lossy(&stored[0].value).contains(&secret[crate::tokens::SECRET_PREFIX.len()..]));
    }

    #[tokio::test]
    async fn bad_names_and_unknown_tokens_are_refused_and_change_nothing() {
        let tokens = shared();
        let tenant = TenantId::default_tenant();
        assert!(matches!(
            tokens.create(&tenant, " ", TokenKind::Scim).await,
            Err(TokenError::InvalidName)
        ));
        tokens.create(&tenant, "twin", TokenKind::Scim).await.unwrap();
        tokens.create(&tenant, "twin", TokenKind::Admin).await.unwrap();
        assert!(matches!(tokens.revoke("twin").await, Err(TokenError::Ambiguous(_))));
        assert!(matches!(tokens.revoke("nobody").await, Err(TokenError::NotFound(_))));
        assert!(tokens.list().await.unwrap().iter().all(TokenRecord::is_active));
    }

    #[tokio::test]
    async fn a_tokens_file_is_imported_once_and_its_tokens_work() {
        let dir = tempfile::tempdir().unwrap();
        let file = TokenStore::new(dir.path());
        let (kept, secret) = file
            .create(&TenantId::default_tenant(), "old", TokenKind::Scim)
            .unwrap();
        let (gone, _) = file
            .create(&TenantId::default_tenant(), "gone", TokenKind::Scim)
            .unwrap();
        file.revoke(&gone.id.to_string()).unwrap();
        let tokens = shared();
        assert_eq!(tokens.import(&file).await.unwrap(), 2);
        // A second replica with a copy of the file imports nothing more.
        assert_eq!(tokens.import(&file).await.unwrap(), 0);
        assert_eq!(tokens.list().await.unwrap(), file.list().unwrap());
        let door = tokens.authenticator(TokenKind::Scim).await.unwrap();
        assert_eq!(door.authenticate(&secret).map(|p| p.token), Some(kept.id));
        // Bootstrap makes no token where some exist, revoked or not.
        assert_eq!(tokens.bootstrap(dir.path()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn expired_shared_tokens_are_refused_and_listed_as_expired() {
        let tokens = shared();
        let tenant = TenantId::default_tenant();
        let expires = Timestamp(Timestamp::now().0 + 1_000_000);
        let (record, secret) = tokens
            .create_expiring(&tenant, "short", TokenKind::Admin, Some(expires))
            .await
            .unwrap();
        let door = tokens.authenticator(TokenKind::Admin).await.unwrap();
        assert_eq!(door.authenticate(&secret).map(|p| p.token), Some(record.id));
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert_eq!(door.authenticate(&secret), None);
        let listed = tokens.list().await.unwrap();
        assert_eq!(listed[0].expires, Some(expires));
        assert!(!listed[0].is_active());
        assert!(matches!(
            tokens
                .create_expiring(&tenant, "past", TokenKind::Admin, Some(Timestamp(1)))
                .await,
            Err(TokenError::InvalidExpiry(_))
        ));
        assert_eq!(tokens.list().await.unwrap().len(), 1);
    }

    /// Entries written before expiries and last uses still decode, and take a last use.
    #[tokio::test]
    async fn entries_without_expiries_or_last_uses_load() {
        let tokens = shared();
        let file_dir = tempfile::tempdir().unwrap();
        let (record, secret) = TokenStore::new(file_dir.path())
            .create(&TenantId::default_tenant(), "old", TokenKind::Scim)
            .unwrap();
        // The entry as the previous format wrote it: no `expires`, no `last_used`.
        let mut old = serde_json::to_value(&record).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("expires");
        fields.remove("last_used");
        assert_eq!(fields.len(), 7, "{fields:?}");
        tokens
            .store
            .put_meta(
                NAMESPACE,
                &record.id.to_string(),
                None,
                serde_json::to_vec(&old).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(tokens.list().await.unwrap(), vec![record.clone()]);
        let door = tokens.authenticator(TokenKind::Scim).await.unwrap();
        assert!(door.authenticate(&secret).is_some());
        let used = door.uses().take();
        tokens.record_uses(&used).await.unwrap();
        assert_eq!(tokens.list().await.unwrap()[0].last_used, Some(used[&record.id]));
    }

    #[tokio::test]
    async fn bootstrap_makes_one_token_on_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = shared();
        let path = tokens
            .bootstrap(dir.path())
            .await
            .unwrap()
            .expect("a first start gets a token");
        let secret = std::fs::read_to_string(path).unwrap();
        let door = tokens.authenticator(TokenKind::Scim).await.unwrap();
        assert!(door.authenticate(secret.trim()).is_some());
        assert_eq!(tokens.bootstrap(dir.path()).await.unwrap(), None);
        assert_eq!(tokens.list().await.unwrap().len(), 1);
    }
}
