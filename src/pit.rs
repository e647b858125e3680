//! Point in time without a full state: one user's or group's record as it was just after a
//! `seq`, rebuilt from its own events, which the history index names and `timeline` reads.
//!
//! Folding a member's own events into an empty state gives exactly its record at that point:
//! the fold ignores what an event says about objects it does not hold (another user added to
//! a group it does not have), and a record depends only on the member's own events. It costs
//! a read of the member's events, not a snapshot load and a replay.

use std::sync::Arc;

use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::model::{Group, User};
use idpsync_engine::{EngineError, State, Tenant};
use idpsync_storage::Seq;

/// The member's own events folded up to `seq`, or the present state when nothing touched the
/// member after `seq` (its record then is what it was).
async fn own_state(tenant: &Tenant, member: Member, seq: Seq) -> Result<Arc<State>, EngineError> {
    let present = tenant.state();
    let touched_later = tenant.with_history(|history, head| {
        history
            .member_events(member, head)
            .last()
            .is_some_and(|last| *last > seq)
    });
    if !touched_later {
        return Ok(present);
    }
    let mut state = State::new();
    for entry in tenant.timeline(member).await? {
        if entry.event.seq > seq {
            break;
        }
        state.apply_mut(&entry.event, &**tenant.keyring());
    }
    Ok(Arc::new(state))
}

/// A user as it was just after `seq` (`None` if it did not exist then).
pub async fn user_at(tenant: &Tenant, user: UserId, seq: Seq) -> Result<Option<Arc<User>>, EngineError> {
    Ok(own_state(tenant, Member::User(user), seq).await?.user(user).cloned())
}

/// A group as it was just after `seq` (`None` if it did not exist then).
pub async fn group_at(tenant: &Tenant, group: GroupId, seq: Seq) -> Result<Option<Arc<Group>>, EngineError> {
    Ok(own_state(tenant, Member::Group(group), seq)
        .await?
        .group(group)
        .cloned())
}
