//! Held syncs kept in the log store's metadata (namespace `holds`, key `tenant/integration`),
//! so that a sync waiting for an operator survives a restart, on every backend. What is kept
//! is what was reviewed: the snapshot, where and when it was held, and what the guard counted;
//! after a start the report is planned again from the snapshot against the state it was held
//! on, which gives the same changes. A hold that expired while the service was down is
//! dropped.
//!
//! On a store replicas share, a hold is confirmed only if the store still keeps it as the hold
//! of the run reviewed: a replica whose memory is behind (another replica's newer run cleared
//! or replaced it) never applies a stale listing.

use std::sync::Arc;

use idpsync_storage::{LogStore, Seq, StoreError, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::Tenant;
use super::erasure::reconcile_view;
use super::reconcile::HeldReconcile;
use crate::error::EngineError;
use crate::event::HoldSummary;
use crate::ids::{IntegrationName, SyncRunId};
use crate::reconcile::{self, DirectorySnapshot, Guard, GuardCount, RecentRemovals};

/// The metadata namespace of held syncs.
const NAMESPACE: &str = idpsync_storage::meta::namespaces::HOLDS;
/// How often a change is tried again when another replica changed the entry meanwhile.
const WRITE_TRIES: usize = 4;

/// A held sync as kept.
#[derive(Serialize, Deserialize)]
struct StoredHold {
    snapshot: DirectorySnapshot,
    held_at: u64,
    held_since: i64,
    guard: GuardCount,
    summary: HoldSummary,
}

/// Whether the store keeps a held sync of `tenant`: a reader of the log alone (such as the
/// leavers' report of the command line) cannot show it without loading the tenant.
pub async fn has_stored_holds(store: &Arc<dyn LogStore>, tenant: &TenantId) -> Result<bool, StoreError> {
    let prefix = format!("{tenant}/");
    Ok(store
        .list_meta(NAMESPACE)
        .await?
        .iter()
        .any(|entry| entry.key.starts_with(&prefix)))
}

impl Tenant {
    fn hold_key(&self, integration: &IntegrationName) -> String {
        format!("{}/{integration}", self.id)
    }

    /// Keeps what a durable batch did to the holds: the holds it set written, those it cleared
    /// removed. A failure is logged; the hold stands in memory all the same.
    pub(super) async fn store_holds(&self, set: &[(IntegrationName, HeldReconcile)], cleared: &[IntegrationName]) {
        for integration in cleared {
            if let Err(error) = self.forget_stored_hold(integration).await {
                tracing::warn!(tenant = %self.id, %integration, %error, "cannot remove a cleared hold from the store");
            }
        }
        for (integration, held) in set {
            if let Err(error) = self.store_hold(integration, held).await {
                tracing::warn!(tenant = %self.id, %integration, %error, "cannot keep a held sync in the store; a restart would drop it");
            }
        }
    }

    async fn store_hold(&self, integration: &IntegrationName, held: &HeldReconcile) -> Result<(), EngineError> {
        let Some(summary) = held.report.held.clone() else {
            return Ok(());
        };
        let stored = StoredHold {
            snapshot: (*held.snapshot).clone(),
            held_at: held.held_at.0,
            held_since: held.held_since.0,
            guard: held.report.guard,
            summary,
        };
        let bytes = postcard::to_stdvec(&stored).map_err(|error| StoreError::InvalidMeta {
            reason: format!("a held sync does not encode: {error}"),
        })?;
        let key = self.hold_key(integration);
        let mut tries = 0;
        loop {
            let current = self.store.get_meta(NAMESPACE, &key).await?;
            match self
                .store
                .put_meta(NAMESPACE, &key, current.map(|entry| entry.version), bytes.clone())
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::MetaConflict { .. }) if tries < WRITE_TRIES => tries += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Removes `integration`'s hold from the store, if it keeps one.
    pub(super) async fn forget_stored_hold(&self, integration: &IntegrationName) -> Result<(), EngineError> {
        let key = self.hold_key(integration);
        let mut tries = 0;
        loop {
            let Some(current) = self.store.get_meta(NAMESPACE, &key).await? else {
                return Ok(());
            };
            match self.store.delete_meta(NAMESPACE, &key, current.version).await {
                Ok(()) => return Ok(()),
                Err(StoreError::MetaConflict { .. }) if tries < WRITE_TRIES => tries += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The run whose hold the store keeps for `integration`, if any.
    pub(super) async fn stored_hold_run(
        &self,
        integration: &IntegrationName,
    ) -> Result<Option<SyncRunId>, EngineError> {
        match self.store.get_meta(NAMESPACE, &self.hold_key(integration)).await? {
            Some(entry) => Ok(Some(decode(&entry.key, &entry.value)?.snapshot.run)),
            None => Ok(None),
        }
    }

    /// Reads the tenant's kept holds back after a start; each becomes its integration's hold
    /// again. Expired ones are removed.
    pub(crate) async fn recall_holds(&self) -> Result<(), EngineError> {
        let prefix = format!("{}/", self.id);
        let now = Timestamp::now();
        for entry in self.store.list_meta(NAMESPACE).await? {
            let Some(name) = entry.key.strip_prefix(&prefix) else {
                continue;
            };
            let integration = IntegrationName::new(name).map_err(|reason| StoreError::InvalidMeta { reason })?;
            let held = self.rebuild_hold(decode(&entry.key, &entry.value)?).await?;
            if now >= held.expires_at(&self.settings.policy) {
                self.forget_stored_hold(&integration).await?;
                continue;
            }
            self.holds.restore(&self.id, integration, held);
        }
        Ok(())
    }

    /// The hold `stored` describes, its report planned again against the state it was held on.
    async fn rebuild_hold(&self, stored: StoredHold) -> Result<HeldReconcile, EngineError> {
        let held_at = Seq(stored.held_at);
        let state = self.state_at(held_at).await?;
        let snapshot = stored.snapshot;
        let view = reconcile_view(&state, &self.keyring, &snapshot.integration, snapshot.named_user_ids());
        let mut new_id = uuid::Uuid::now_v7;
        let mut report = reconcile::plan(
            &view,
            &snapshot,
            Guard::Confirmed,
            &self.settings.policy,
            RecentRemovals::default(),
            // Planned as it was when held.
            Timestamp(stored.held_since),
            &mut new_id,
        )
        .into_report();
        report.guard = stored.guard;
        report.held = Some(stored.summary);
        Ok(HeldReconcile {
            report,
            snapshot: Arc::new(snapshot),
            held_at,
            held_since: Timestamp(stored.held_since),
        })
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<StoredHold, StoreError> {
    postcard::from_bytes(bytes).map_err(|error| StoreError::InvalidMeta {
        reason: format!("the held sync {key} does not decode: {error}"),
    })
}
