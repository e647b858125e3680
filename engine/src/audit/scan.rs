//! Reading stretches of the log for the audit: the binding changes (which the history index
//! does not keep), and a user by a userName it had before it was deleted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use idpsync_storage::{Hash32, Seq, TenantId};

use super::AuditError;
use crate::error::EngineError;
use crate::event::{Event, LoggedEvent};
use crate::ids::{Member, UserId};
use crate::seal::Opener as _;
use crate::state::fold_case;
use crate::tenant::Tenant;

/// Every binding change of one tenant up to `scanned`.
#[derive(Default)]
pub struct BindingLog {
    scanned: Seq,
    events: Vec<(LoggedEvent, Hash32)>,
}

impl BindingLog {
    /// Reads the records after the last one read, up to the tenant's published head.
    pub async fn catch_up(&mut self, tenant: &Tenant) -> Result<(), EngineError> {
        let head = tenant.state().seq();
        if head <= self.scanned {
            return Ok(());
        }
        let mut events = tenant.events(self.scanned.next()..=head);
        while let Some(page) = events.next_page().await? {
            self.events.extend(page.into_iter().filter(|(event, _)| {
                matches!(
                    event.envelope.event,
                    Event::BindingSet { .. } | Event::BindingRemoved { .. }
                )
            }));
        }
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
    pub async fn current(&self, tenant: &Tenant) -> Result<tokio::sync::OwnedMutexGuard<BindingLog>, EngineError> {
        let log = Arc::clone(
            self.tenants
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(tenant.id().clone())
                .or_default(),
        );
        let mut guard = log.lock_owned().await;
        guard.catch_up(tenant).await?;
        Ok(guard)
    }
}

/// A user by id (present or past), by present userName, or, failing both, by a userName it
/// had before it was deleted: found by reading the log, the one slow path (name a deleted user
/// by its id to avoid it).
pub async fn resolve_user(tenant: &Tenant, key: &str) -> Result<UserId, AuditError> {
    if let Ok(id) = key.parse::<UserId>()
        && tenant
            .with_history(|history, head| !history.member_events(Member::User(id), head).is_empty())
            .await
    {
        return Ok(id);
    }
    if let Some(user) = tenant.state().user_by_name(key) {
        return Ok(user.id);
    }
    let wanted = fold_case(key);
    let keyring = tenant.keyring();
    let mut named = None;
    let mut events = tenant.events(Seq(1)..=tenant.state().seq());
    while let Some(page) = events.next_page().await? {
        for (event, _) in page {
            let (user, personal) = match &event.envelope.event {
                Event::UserProvisioned { user, personal, .. } | Event::UserUpdated { user, personal, .. } => {
                    (user, personal)
                }
                _ => continue,
            };
            if keyring
                .open(*user, personal)
                .is_some_and(|fields| fold_case(&fields.profile.user_name) == wanted)
            {
                named = Some(*user);
            }
        }
    }
    named.ok_or_else(|| AuditError::UnknownUser {
        tenant: tenant.id().clone(),
        user: key.to_owned(),
    })
}
