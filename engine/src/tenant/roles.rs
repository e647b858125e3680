//! The role changes of a stretch of the log: the state before it, with each record folded and
//! projected as the writer did. (Every user's role at a moment needs only the state then:
//! [`crate::roles::all_roles`] of [`Tenant::state_at`].)

use idpsync_storage::Seq;

use super::Tenant;
use crate::error::EngineError;
use crate::projector::fold_and_project;
use crate::replay::replay_with;
use crate::roles::RoleChange;

impl Tenant {
    /// The role changes caused by the records `from..=to`, in log order.
    pub async fn role_changes(&self, from: Seq, to: Seq) -> Result<Vec<RoleChange>, EngineError> {
        let mut changes = Vec::new();
        if from > to || from == Seq::ZERO {
            return Ok(changes);
        }
        let mut state = self.state_at(Seq(from.0 - 1)).await?;
        let keyring = self.keyring();
        replay_with(&self.store, &self.id, &mut state, to, |state, event, _| {
            let (_, projection) = fold_and_project(state, &event, &**keyring);
            changes.extend(projection.roles);
        })
        .await?;
        Ok(changes)
    }
}
