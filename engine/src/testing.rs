//! Test support: a deterministic harness that decides and folds commands without a log, so
//! that tests read given / when / then.

use uuid::Uuid;

use crate::command::{Command, Origin};
use crate::decide::{DecideContext, Outcome, decide};
use crate::event::{Cause, Event, LoggedEvent, Source};
use crate::history::History;
use crate::ids::{EventId, GroupId, Member, Seq, Timestamp, UserId};
use crate::model::{Owner, UserProfile};
use crate::projector::{self, AccessChange};
use crate::reconcile::{GuardMemory, ReconcilePolicy};
use crate::rejection::Rejection;
use crate::roles::RoleChange;
use crate::seal::WithoutKeys;
use crate::state::State;

/// Decides and folds commands with counter ids and a clock that ticks one second per record.
pub(crate) struct Harness {
    pub(crate) state: State,
    pub(crate) history: History,
    pub(crate) policy: ReconcilePolicy,
    /// What the guard remembers of earlier runs (the writer keeps it from the log).
    pub(crate) guard: GuardMemory,
    pub(crate) log: Vec<LoggedEvent>,
    pub(crate) access: Vec<AccessChange>,
    pub(crate) roles: Vec<RoleChange>,
    next_id: u128,
}

impl Harness {
    pub(crate) fn new() -> Harness {
        Harness {
            state: State::new(),
            history: History::new(),
            policy: ReconcilePolicy::default(),
            guard: GuardMemory::default(),
            log: Vec::new(),
            access: Vec::new(),
            roles: Vec::new(),
            next_id: 1,
        }
    }

    pub(crate) fn origin() -> Origin {
        Origin {
            source: Source::Operator,
            cause: Cause::Unspecified,
        }
    }

    /// Decides `command` and folds its events; returns the events or the rejection.
    pub(crate) fn when(&mut self, command: Command) -> Result<(Vec<Event>, Outcome), Rejection> {
        let mut counter = self.next_id;
        let mut new_id = || {
            counter += 1;
            Uuid::from_u128(counter)
        };
        let mut context = DecideContext {
            new_id: &mut new_id,
            policy: &self.policy,
            guard: &self.guard,
            // The time the next record will be recorded at (see below).
            now: Timestamp(1_700_000_000_000_000 + self.state.seq().next().0 as i64 * 1_000_000),
        };
        let decision = decide(&self.state, &command, &Self::origin(), &mut context)?;
        self.next_id = counter;
        let mut events = Vec::new();
        for envelope in decision.events {
            let seq = self.state.seq().next();
            let logged = LoggedEvent {
                seq,
                recorded_at: Timestamp(1_700_000_000_000_000 + seq.0 as i64 * 1_000_000),
                event_id: EventId(Uuid::from_u128(seq.0 as u128)),
                envelope,
            };
            let (effects, projection) = projector::fold_and_project(&mut self.state, &logged, &WithoutKeys);
            self.history.record(seq, logged.recorded_at, &effects);
            self.access.extend(projection.access);
            self.roles.extend(projection.roles);
            events.push(logged.envelope.event.clone());
            self.log.push(logged);
        }
        Ok((events, decision.outcome))
    }

    /// Like [`Harness::when`], for set-up steps that must succeed.
    pub(crate) fn given(&mut self, command: Command) -> Outcome {
        self.when(command).expect("set-up command is accepted").1
    }

    pub(crate) fn user(&mut self, user_name: &str) -> UserId {
        let profile = UserProfile {
            user_name: user_name.to_owned(),
            ..UserProfile::default()
        };
        match self.given(Command::ProvisionUser {
            owner: Owner::Scim,
            external_id: None,
            active: true,
            profile,
        }) {
            Outcome::UserProvisioned(id) => id,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    pub(crate) fn group(&mut self, display_name: &str, members: &[Member]) -> GroupId {
        let command = Command::CreateGroup {
            owner: Owner::Scim,
            external_id: None,
            display_name: display_name.to_owned(),
            members: members.to_vec(),
        };
        match self.given(command) {
            Outcome::GroupCreated(id) => id,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    /// Folds the log so far from scratch.
    pub(crate) fn refold(&self) -> State {
        let mut state = State::new();
        for event in &self.log {
            state.apply_mut(event, &WithoutKeys);
        }
        state
    }

    pub(crate) fn head(&self) -> Seq {
        self.state.seq()
    }
}
