//! Applying logged events to a tenant's state: fold, project, and collect what publishing
//! needs. The one way events that are in the log, or are about to be, become what a tenant
//! publishes: each event with its access changes ([`Applied`]) and, for the history index, what
//! folding it changed.
//!
//! Its users:
//! - the writer applies each decision's events as it decides them, on its speculative state
//!   (dropped if the append fails), and hands the batch to the publisher (`publish.rs`) once
//!   the append is durable;
//! - a change-stream consumer catching up from the log applies the records it reads back, so
//!   the access changes it is given are the writer's;
//! - a follower of another replica's log is meant to do as the two together: apply the
//!   committed records it reads back ([`ToApply::committed`]), then publish the batch with a
//!   publisher of its own and take snapshots with a snapshotter (`snapshotter.rs`), so that its
//!   state, history index, change feed and checkpoints come out exactly as the writer's.
//!
//! Replay at start-up folds without projecting, into flat maps, for speed; it shares only the
//! history step: both extend the index with `History::record_batch` from an `EffectsBatch`.

use idpsync_storage::Hash32;

use crate::event::{LoggedEvent, Personal};
use crate::history::EffectsBatch;
use crate::ids::UserId;
use crate::projector::{self, AccessChange};
use crate::roles::RoleChange;
use crate::seal::{Opener, PersonalFields};
use crate::state::State;

/// One event as the writer applied it: the event, its chain link, and the access it changed.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The event with its position and time.
    pub event: LoggedEvent,
    /// The record's chain link.
    pub chain: Hash32,
    /// The access changes it caused, in the projector's order.
    pub access: Vec<AccessChange>,
    /// The role changes it caused, by user.
    pub roles: Vec<RoleChange>,
}

/// An event to apply, with what the fold needs besides it.
pub(crate) struct ToApply {
    event: LoggedEvent,
    /// Its record's chain link; for the writer's own events, zero until the batch is durable.
    chain: Hash32,
    /// The fields the writer has just sealed into the event, so that the fold need not
    /// decrypt what was just encrypted.
    plaintext: Option<(UserId, PersonalFields)>,
}

impl ToApply {
    /// A record read back from the log.
    pub(crate) fn committed(event: LoggedEvent, chain: Hash32) -> ToApply {
        ToApply {
            event,
            chain,
            plaintext: None,
        }
    }

    /// An event the writer has just logged, with the fields it sealed into it, if any.
    pub(crate) fn just_logged(event: LoggedEvent, plaintext: Option<(UserId, PersonalFields)>) -> ToApply {
        ToApply {
            event,
            chain: Hash32::ZERO,
            plaintext,
        }
    }
}

/// What applying a run of consecutive events yields for publishing.
#[derive(Default)]
pub(crate) struct AppliedBatch {
    /// Each event with its chain link and access changes, in log order.
    items: Vec<Applied>,
    /// What each changed, for the history index.
    effects: EffectsBatch,
}

impl AppliedBatch {
    /// Folds `events`, the records after `state`'s, into it in order, projects each, and adds
    /// what they yield to the batch. Personal parts are read with `keys`, unless the writer
    /// handed their plaintext.
    pub(crate) fn apply(&mut self, state: &mut State, events: impl IntoIterator<Item = ToApply>, keys: &dyn Opener) {
        for ToApply {
            event,
            chain,
            plaintext,
        } in events
        {
            let (effects, projection) = match &plaintext {
                Some((user, fields)) => projector::fold_and_project(state, &event, &JustSealed { user: *user, fields }),
                None => projector::fold_and_project(state, &event, keys),
            };
            self.effects.push(event.seq, event.recorded_at, &effects);
            self.items.push(Applied {
                event,
                chain,
                access: projection.access,
                roles: projection.roles,
            });
        }
    }

    /// Whether it holds no event.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sets the chain links of the writer's events once their append is durable, in order.
    pub(crate) fn set_chains(&mut self, chains: Vec<Hash32>) {
        for (applied, chain) in self.items.iter_mut().zip(chains) {
            applied.chain = chain;
        }
    }

    /// The events and what they changed.
    pub(crate) fn into_parts(self) -> (Vec<Applied>, EffectsBatch) {
        (self.items, self.effects)
    }
}

/// The plaintext of the fields the writer just sealed, so the fold need not decrypt them.
struct JustSealed<'a> {
    user: UserId,
    fields: &'a PersonalFields,
}

impl Opener for JustSealed<'_> {
    fn open(&self, user: UserId, _personal: &Personal) -> Option<PersonalFields> {
        (user == self.user).then(|| self.fields.clone())
    }
}
