//! What an erasure does on a tenant beyond its event: the user's key destroyed in the store and
//! forgotten, with everything in memory that was read with it (the in-memory checkpoints, and
//! whoever watches [`Tenant::erasures`]); and the erased users an integration owns, recognised
//! by its reconcile from the keyed hashes of their externalIds.

use std::borrow::Cow;

use super::Tenant;
use crate::ids::{IntegrationName, UserId};
use crate::seal::{Keyring, secret_id};
use crate::state::State;

impl Tenant {
    /// Changes each time a user's key is destroyed (the value counts them): whatever was read
    /// or rendered from this tenant before holds personal fields that are erased now, and
    /// whoever keeps such things (a cache of rendered events) drops them when it changes.
    pub fn erasures(&self) -> tokio::sync::watch::Receiver<u64> {
        self.erasures.subscribe()
    }
}

/// Destroys an erased user's key in the store, then forgets it and everything in memory that
/// was read with it: the in-memory checkpoints read as if folded without the key, and the
/// watchers of [`Tenant::erasures`] hear of it. If the store fails, the key stays until the
/// next start, which destroys the keys of every erased user it finds.
pub(crate) async fn destroy_key(tenant: &Tenant, user: UserId) {
    if let Err(error) = tenant.store.destroy_secret(&tenant.id, secret_id(user)).await {
        tracing::error!(tenant = %tenant.id, %user, %error, "cannot destroy an erased user's key yet");
        return;
    }
    tenant.keyring.forget(user);
    for state in tenant
        .checkpoints
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values_mut()
    {
        state.forget_personal_fields(user);
    }
    tenant.erasures.send_modify(|count| *count += 1);
}

/// `state` as `integration`'s reconcile must see it: each erased user the integration owns
/// carries, as its externalId, the id among `named` (the user ids a listing or a snapshot names)
/// whose keyed hash it kept, so that the listing finds it rather than provisioning the person
/// anew; one that none of them names carries `erased-<user id>`, an id no IdP lists, so that
/// a complete listing without it removes it as it removes any user it no longer has. The
/// state itself, untouched, when the integration owns no erased user.
pub(super) fn reconcile_view<'s, 'n>(
    state: &'s State,
    keyring: &Keyring,
    integration: &IntegrationName,
    named: impl Iterator<Item = &'n str>,
) -> Cow<'s, State> {
    let mut erased: Vec<_> = state.erased_users_owned_by(integration).collect();
    if erased.is_empty() {
        return Cow::Borrowed(state);
    }
    let mut external_ids = Vec::with_capacity(erased.len());
    if let Some(lookup) = keyring.lookup_key() {
        for external_id in named {
            let hash = lookup.hash(external_id);
            if let Ok(at) = erased.binary_search_by(|(kept, _)| (*kept).cmp(&hash)) {
                let (_, user) = erased.remove(at);
                external_ids.push((user, external_id.to_owned()));
            }
        }
    }
    external_ids.extend(erased.into_iter().map(|(_, user)| (user, format!("erased-{user}"))));
    Cow::Owned(state.with_external_ids(external_ids))
}
