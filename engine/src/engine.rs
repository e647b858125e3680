//! [`Engine`]: every tenant of one log store, opened and running.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use idpsync_storage::{LogStore, Seq, TenantId};
use tokio::sync::OnceCell;

use crate::error::EngineError;
use crate::ids::UserId;
use crate::replay::replay_recording;
use crate::seal::Keyring;
use crate::tenant::{Tenant, TenantSettings};

/// The engine: a running writer per tenant over one log store.
pub struct Engine {
    store: Arc<dyn LogStore>,
    settings: TenantSettings,
    /// One slot per tenant, filled once by whichever caller opens it first; every other caller
    /// waits for that opening, so a tenant never has two writers.
    tenants: RwLock<BTreeMap<TenantId, Arc<OnceCell<Arc<Tenant>>>>>,
}

impl Engine {
    /// Opens every tenant in `store`, creating the `default` tenant if it does not exist.
    ///
    /// Each tenant starts from its latest snapshot plus the records after it, whose chain is
    /// checked on the way.
    pub async fn open(store: Arc<dyn LogStore>, settings: TenantSettings) -> Result<Engine, EngineError> {
        store.ensure_tenant(&TenantId::default_tenant()).await?;
        let engine = Engine {
            store,
            settings,
            tenants: RwLock::new(BTreeMap::new()),
        };
        for id in engine.store.tenants().await? {
            let tenant = engine.load(id.clone()).await?;
            let slot = Arc::new(OnceCell::new_with(Some(tenant)));
            engine
                .tenants
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, slot);
        }
        Ok(engine)
    }

    async fn load(&self, id: TenantId) -> Result<Arc<Tenant>, EngineError> {
        let started = std::time::Instant::now();
        let head = self.store.head(&id).await?;
        let keyring = Arc::new(Keyring::load(&*self.store, &id).await?);
        let (mut state, mut history) = crate::tenant::load_snapshot_with_history(&self.store, &id, &keyring, head.seq)
            .await?
            .unwrap_or_default();
        let snapshot_seq = state.seq();
        replay_recording(&self.store, &id, &*keyring, &mut state, &mut history, head.seq).await?;
        tracing::info!(
            tenant = %id,
            head = %head.seq,
            snapshot = %snapshot_seq,
            replayed = head.seq.0 - snapshot_seq.0,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tenant loaded"
        );
        metrics::gauge!("idpsync_log_head_seq", "tenant" => id.to_string()).set(head.seq.0 as f64);
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

    /// Every opened tenant, in id order.
    fn opened(&self) -> impl Iterator<Item = (TenantId, Arc<Tenant>)> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let opened: Vec<_> = tenants
            .iter()
            .filter_map(|(id, slot)| Some((id.clone(), Arc::clone(slot.get()?))))
            .collect();
        opened.into_iter()
    }

    /// A tenant, if it exists and is open.
    pub fn tenant(&self, id: &TenantId) -> Option<Arc<Tenant>> {
        let tenants = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        tenants.get(id)?.get().cloned()
    }

    /// A tenant, or [`EngineError::UnknownTenant`].
    pub fn require_tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, EngineError> {
        self.tenant(id).ok_or_else(|| EngineError::UnknownTenant(id.clone()))
    }

    /// A tenant that is open, or that the log has and this engine has not opened yet (on a
    /// shared log, another replica created it): opened now. `None` when the log has no such
    /// tenant.
    pub async fn tenant_in_log(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, EngineError> {
        if let Some(tenant) = self.tenant(id) {
            return Ok(Some(tenant));
        }
        if !self.store.is_shared() {
            return Ok(None);
        }
        match self.store.head(id).await {
            Ok(_) => Ok(Some(self.ensure_tenant(id).await?)),
            Err(idpsync_storage::StoreError::UnknownTenant(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// A tenant, created empty if it does not exist.
    ///
    /// Callers that ask for the same new tenant at once all wait for one opening and get the
    /// same tenant; if the opening fails, the next call tries again.
    pub async fn ensure_tenant(&self, id: &TenantId) -> Result<Arc<Tenant>, EngineError> {
        if let Some(tenant) = self.tenant(id) {
            return Ok(tenant);
        }
        let slot = self.slot(id);
        let tenant = slot
            .get_or_try_init(|| async {
                self.store.ensure_tenant(id).await?;
                self.load(id.clone()).await
            })
            .await?;
        Ok(Arc::clone(tenant))
    }

    /// Every open tenant's name.
    pub fn tenant_ids(&self) -> Vec<TenantId> {
        self.opened().map(|(id, _)| id).collect()
    }

    /// Follows the appends of the other processes that share the store (replicas on one
    /// PostgreSQL database): each is folded into this engine's tenants and published to their
    /// change streams, a tenant another replica created is opened when first heard of, and every
    /// head is read at least every `every`, so a missed notice only delays a record. `None`
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
        for (_, tenant) in self.opened() {
            tenant.shutdown().await;
        }
    }

    /// The head of every tenant, for status output.
    pub fn heads(&self) -> Vec<(TenantId, Seq)> {
        self.opened().map(|(id, tenant)| (id, tenant.state().seq())).collect()
    }
}
