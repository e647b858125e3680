//! [`Engine`]: the tenants of one log store, each loaded on first use and then running.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use idpsync_storage::{LogStore, Seq, TenantId};
use tokio::sync::OnceCell;

use crate::error::EngineError;
use crate::history::History;
use crate::ids::UserId;
use crate::replay::{fold_in_batches, replay_recording};
use crate::seal::{Keyring, KeysLoading, KeysLoadingGuard};
use crate::state::State;
use crate::tenant::{StartingHistory, Tenant, TenantSettings};

/// The engine: a running writer per loaded tenant over one log store.
pub struct Engine {
    store: Arc<dyn LogStore>,
    settings: TenantSettings,
    /// One slot per tenant asked for since the start, filled once by whichever caller loads it
    /// first; every other caller waits for that loading, so a tenant never has two writers.
    tenants: RwLock<BTreeMap<TenantId, Arc<OnceCell<Arc<Tenant>>>>>,
}

impl Engine {
    /// Opens `store`, creating the `default` tenant if it does not exist and loading it.
    ///
    /// Every other tenant loads on first use ([`Engine::ensure_tenant`],
    /// [`Engine::tenant_in_log`], [`Engine::existing_tenant`]), so opening costs the same for
    /// ten tenants as for ten thousand. A tenant starts from its latest snapshot plus the
    /// records after it, whose chain is checked on the way.
    pub async fn open(store: Arc<dyn LogStore>, settings: TenantSettings) -> Result<Engine, EngineError> {
        let engine = Engine {
            store,
            settings,
            tenants: RwLock::new(BTreeMap::new()),
        };
        engine.ensure_tenant(&TenantId::default_tenant()).await?;
        Ok(engine)
    }

    async fn load(&self, id: TenantId) -> Result<Arc<Tenant>, EngineError> {
        let started = std::time::Instant::now();
        let head = self.store.head(&id).await?;
        // The keys load while the snapshot is read: its users are opened as the keys arrive.
        let keys = Arc::new(KeysLoading::default());
        let guard = KeysLoadingGuard(Arc::clone(&keys));
        let loading_keys = async {
            let keyring = Keyring::load(&*self.store, &id).await.map(Arc::new);
            guard.0.set(keyring.as_ref().ok().cloned());
            keyring
        };
        let (keyring, snapshot) = tokio::join!(
            loading_keys,
            crate::tenant::load_snapshot_with_history(&self.store, &id, keys, head.seq)
        );
        let keyring = keyring?;
        // From a snapshot, the tenant serves while its history index decodes (see
        // `tenant/history_index.rs`); without one, the replay builds the index.
        let (mut state, history) = match snapshot? {
            Some((state, sections)) => (state, Some(sections)),
            None => (State::new(), None),
        };
        let snapshot_seq = state.seq();
        let history = match history {
            Some(sections) => {
                let mut tail = Vec::new();
                fold_in_batches(&self.store, &id, &*keyring, &mut state, head.seq, |batch| {
                    tail.push(batch)
                })
                .await?;
                StartingHistory::Loading { sections, tail }
            }
            None => {
                let mut history = History::new();
                replay_recording(&self.store, &id, &*keyring, &mut state, &mut history, head.seq).await?;
                StartingHistory::Loaded(history)
            }
        };
        tracing::info!(
            tenant = %id,
            head = %head.seq,
            snapshot = %snapshot_seq,
            replayed = head.seq.0 - snapshot_seq.0,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tenant loaded"
        );
        metrics::gauge!("idpsync_log_head_seq", "tenant" => id.to_string()).set(head.seq.0 as f64);
        metrics::gauge!("idpsync_tenants_loaded").increment(1.0);
        for (_, users) in state.user_name_collisions() {
            tracing::warn!(
                tenant = %id,
                holder = %users[0],
                others = ?&users[1..],
                "users share one userName as names are now compared (compatibility forms and case folded); \
                 the earliest keeps it, the others keep theirs but no other user can take it"
            );
        }
        // Keys of users erased before a crash could destroy them are destroyed now.
        let leftover: Vec<UserId> = state
            .users()
            .filter(|user| user.erased && keyring.has_key(user.id))
            .map(|user| user.id)
            .collect();
        let tenant = crate::tenant::start(
            id.clone(),
            Arc::clone(&self.store),
            self.settings.clone(),
            state,
            history,
            keyring,
            snapshot_seq,
        );
        for user in leftover {
            crate::tenant::destroy_key(&tenant, user).await;
        }
        // Syncs held for an operator before the restart wait for one again.
        if let Err(error) = tenant.recall_holds().await {
            tracing::warn!(tenant = %id, %error, "cannot read the held syncs back from the store; the next runs hold again");
        }
        Ok(tenant)
    }

    /// The tenant's slot, added empty if the tenant has none yet.
    fn slot(&self, id: &TenantId) -> Arc<OnceCell<Arc<Tenant>>> {
        if let Some(slot) = self.tenants.read().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Arc::clone(slot);
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|p| p.into_inner());
        Arc::clone(tenants.entry(id.clone()).or_default())
    }

    /// The tenant, loaded by the first caller (created in the store first when `create`); every
    /// other caller waits for that loading and gets the same tenant, so a tenant never has two
    /// writers. If the loading fails, the next call tries again.
    async fn load_once(&self, id: &TenantId, create: bool) -> Result<Arc<Tenant>, EngineError> {
        let slot = self.slot(id);
        let tenant = slot
            .get_or_try_init(|| async {
                if create {
                    self.store.ensure_tenant(id).await?;
                }
                self.load(id.clone()).await
            })
            .await?;
        Ok(Arc::clone(tenant))
    }

    /// Every loaded tenant, in id order; the store's tenants are `store().tenants()`.
    pub fn loaded_tenants(&self) -> Vec<Arc<Tenant>> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        tenants.values().filter_map(|slot| slot.get().cloned()).collect()
    }

    /// A tenant that is loaded or being loaded, once its loading is done; `None` for a tenant
    /// nobody has asked for since the start (it loads up to date on first use).
    pub(crate) async fn wanted_tenant(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, EngineError> {
        if !self.tenants.read().unwrap_or_else(|p| p.into_inner()).contains_key(id) {
            return Ok(None);
        }
        self.load_once(id, false).await.map(Some)
    }

    /// A tenant, if it is loaded. Tenants other than `default` load on first use: to load one
    /// the store has, use [`Engine::tenant_in_log`] or [`Engine::existing_tenant`].
    pub fn tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        tenants.get(id)?.get().cloned()
    }

    /// A loaded tenant (the `default` tenant always is), or [`EngineError::UnknownTenant`].
    pub fn require_tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, EngineError> {
        self.tenant(id).ok_or_else(|| EngineError::UnknownTenant(id.clone()))
    }

    /// A tenant the log has, loaded now if this is its first use (on a shared log, another
    /// replica may have created it). `None` when the log has no such tenant.
    pub async fn tenant_in_log(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, EngineError> {
        if let Some(tenant) = self.tenant(id) {
            return Ok(Some(tenant));
        }
        // Asked first, so that a name the log does not have leaves no slot behind.
        match self.store.head(id).await {
            Ok(_) => self.load_once(id, false).await.map(Some),
            Err(idpsync_storage::StoreError::UnknownTenant(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// A tenant the log has, loaded now if this is its first use, or
    /// [`EngineError::UnknownTenant`].
    pub async fn existing_tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, EngineError> {
        self.tenant_in_log(id)
            .await?
            .ok_or_else(|| EngineError::UnknownTenant(id.clone()))
    }

    /// A tenant, created empty if it does not exist, loaded now if this is its first use.
    ///
    /// Callers that ask for the same tenant at once all wait for one loading and get the
    /// same tenant; if the loading fails, the next call tries again.
    pub async fn ensure_tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, EngineError> {
        if let Some(tenant) = self.tenant(id) {
            return Ok(tenant);
        }
        self.load_once(id, true).await
    }

    /// Follows the appends of the other processes that share the store (replicas on one
    /// PostgreSQL database): each is folded into this engine's loaded tenants and published to
    /// their change streams (a tenant not loaded here is left alone: it loads up to date on
    /// first use), and every loaded tenant's head is read at least every `every`, so a missed
    /// notice only delays a record. `None`
    /// when only this process writes the store. Following stops when the [`Follower`] is
    /// dropped.
    ///
    /// [`Follower`]: crate::Follower
    pub fn follow_other_writers(self: &Arc<Self>, every: std::time::Duration) -> Option<crate::Follower> {
        crate::follow::start(self, every)
    }

    /// The log store underneath.
    pub fn store(&self) -> &Arc<dyn LogStore> {
        &self.store
    }

    /// Stops every writer after the commands already queued, writing final snapshots.
    pub async fn shutdown(&self) {
        for tenant in self.loaded_tenants() {
            tenant.shutdown().await;
        }
    }

    /// The head of every loaded tenant (a tenant not loaded since the start has not moved
    /// through this engine).
    pub fn heads(&self) -> Vec<(TenantId, Seq)> {
        self.loaded_tenants()
            .into_iter()
            .map(|tenant| (tenant.id().clone(), tenant.state().seq()))
            .collect()
    }
}
