//! What an integration keeps between runs (its delta cursor, when its last full listing was
//! applied), kept in the log store's metadata beside the tenant's log, so that on a store
//! replicas share the replica that takes an integration over goes on from where the last run
//! stopped. The engine keeps the bytes; the drivers decide what they mean.

use idpsync_storage::StoreError;

use super::Tenant;
use crate::error::EngineError;
use crate::ids::IntegrationName;

/// The metadata namespace of integration states.
const NAMESPACE: &str = idpsync_storage::meta::namespaces::INTEGRATION_STATE;
/// How often a save is tried again when another writer changed the state meanwhile.
const SAVE_TRIES: usize = 4;

impl Tenant {
    fn integration_key(&self, integration: &IntegrationName) -> String {
        format!("{}/{integration}", self.id)
    }

    /// The state `integration` saved last, if any.
    pub async fn integration_state(&self, integration: &IntegrationName) -> Result<Option<Vec<u8>>, EngineError> {
        let entry = self
            .store
            .get_meta(NAMESPACE, &self.integration_key(integration))
            .await?;
        Ok(entry.map(|entry| entry.value))
    }

    /// Replaces `integration`'s state; durable when this returns. The last save wins: only
    /// the replica that holds the integration's lease runs it.
    pub async fn save_integration_state(
        &self,
        integration: &IntegrationName,
        state: Vec<u8>,
    ) -> Result<(), EngineError> {
        let key = self.integration_key(integration);
        let mut tries = 0;
        loop {
            let current = self.store.get_meta(NAMESPACE, &key).await?;
            match self
                .store
                .put_meta(NAMESPACE, &key, current.map(|entry| entry.version), state.clone())
                .await
            {
                Ok(_) => return Ok(()),
                Err(StoreError::MetaConflict { .. }) if tries < SAVE_TRIES => tries += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }
}
