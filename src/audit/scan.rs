//! Reading stretches of the log for the audit: the binding changes (which the history index
//! does not keep), and the leavers of a period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use idpsync_engine::event::{Event, LoggedEvent};
use idpsync_engine::reader::EventPages;
use idpsync_engine::{EngineError, Tenant};
use idpsync_storage::{Hash32, LogStore, Seq, TenantId};

/// The events of records `from ..= to` that `keep` selects, with their chain links.
pub async fn events_matching(
    store: &Arc<dyn LogStore>,
    tenant: &TenantId,
    from: Seq,
    to: Seq,
    keep: impl Fn(&Event) -> bool,
) -> Result<Vec<(LoggedEvent, Hash32)>, EngineError> {
    let mut found = Vec::new();
    let mut events = EventPages::new(store, tenant, from..=to);
    while let Some(page) = events.next_page().await? {
        found.extend(page.into_iter().filter(|(event, _)| keep(&event.envelope.event)));
    }
    Ok(found)
}

fn is_binding(event: &Event) -> bool {
    matches!(event, Event::BindingSet { .. } | Event::BindingRemoved { .. })
}

/// Every binding change of one tenant up to `scanned`.
#[derive(Default)]
pub struct BindingLog {
    scanned: Seq,
    events: Vec<(LoggedEvent, Hash32)>,
}

impl BindingLog {
    /// Reads the records after the last one read, up to the tenant's published head.
    pub async fn catch_up(&mut self, tenant: &Tenant, store: &Arc<dyn LogStore>) -> Result<(), EngineError> {
        let head = tenant.state().seq();
        if head <= self.scanned {
            return Ok(());
        }
        let found = events_matching(store, tenant.id(), self.scanned.next(), head, is_binding).await?;
        self.events.extend(found);
        self.scanned = head;
        Ok(())
    }

    /// The binding changes read, in log order.
    pub fn events(&self) -> &[(LoggedEvent, Hash32)] {
        &self.events
    }
}

/// The binding logs of every tenant, read once and extended as the log grows: a service
/// pays for reading the whole log once per tenant, at its first audit.
#[derive(Default)]
pub struct BindingLogs {
    tenants: Mutex<HashMap<TenantId, Arc<tokio::sync::Mutex<BindingLog>>>>,
}

impl BindingLogs {
    /// The tenant's binding log, caught up with its head.
    pub async fn current(
        &self,
        tenant: &Tenant,
        store: &Arc<dyn LogStore>,
    ) -> Result<tokio::sync::OwnedMutexGuard<BindingLog>, EngineError> {
        let log = Arc::clone(
            self.tenants
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(tenant.id().clone())
                .or_default(),
        );
        let mut guard = log.lock_owned().await;
        guard.catch_up(tenant, store).await?;
        Ok(guard)
    }
}
