//! Speculative folding: an event decided but not yet in the log, folded into a scratch state
//! so that the decisions after it (the next part of an atomic command, the next object of a
//! reconcile) see it.

use uuid::Uuid;

use crate::event::{Envelope, LoggedEvent};
use crate::ids::EventId;
use crate::seal::WithoutKeys;
use crate::state::State;

/// Folds an event that has no place in the log yet into a scratch state, so that the next
/// decision sees it. Its seq and time are placeholders: the writer assigns the real ones.
pub(crate) fn apply_speculatively(scratch: &mut State, envelope: &Envelope) {
    let logged = LoggedEvent {
        seq: scratch.seq().next(),
        recorded_at: scratch.recorded_at(),
        event_id: EventId(Uuid::nil()),
        envelope: envelope.clone(),
    };
    scratch.apply_mut(&logged, &WithoutKeys);
}
