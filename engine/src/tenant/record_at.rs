//! One user's or group's record as it was just after a past `seq`, without a whole state:
//! rebuilt from its own events, which the history index names and [`Tenant::timeline`] reads.
//!
//! Folding a member's own events into an empty state gives exactly its record at that point:
//! the fold ignores what an event says about objects it does not hold (another user added to
//! a group it does not have), and a record depends only on the member's own events. It costs
//! a read of the member's events, not a snapshot load and a replay ([`Tenant::state_at`]).

use std::sync::Arc;

use idpsync_storage::Seq;

use super::Tenant;
use crate::error::EngineError;
use crate::ids::{GroupId, Member, UserId};
use crate::model::{Group, User};
use crate::state::State;

impl Tenant {
    /// A user as it was just after `seq` (`None` if it did not exist then).
    pub async fn user_at(&self, user: UserId, seq: Seq) -> Result<Option<Arc<User>>, EngineError> {
        Ok(self.own_state(Member::User(user), seq).await?.user(user).cloned())
    }

    /// A group as it was just after `seq` (`None` if it did not exist then).
    pub async fn group_at(&self, group: GroupId, seq: Seq) -> Result<Option<Arc<Group>>, EngineError> {
        Ok(self.own_state(Member::Group(group), seq).await?.group(group).cloned())
    }

    /// The member's own events folded up to `seq`, or the present state when nothing touched
    /// the member after `seq` (its record then is what it was).
    async fn own_state(&self, member: Member, seq: Seq) -> Result<Arc<State>, EngineError> {
        let present = self.state();
        let touched_later = self
            .with_history(|history, head| {
                history
                    .member_events(member, head)
                    .last()
                    .is_some_and(|last| *last > seq)
            })
            .await;
        if !touched_later {
            return Ok(present);
        }
        let mut state = State::new();
        for entry in self.timeline(member).await? {
            if entry.event.seq > seq {
                break;
            }
            state.apply_mut(&entry.event, &*self.keyring);
        }
        Ok(Arc::new(state))
    }
}
