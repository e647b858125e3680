//! The projector: one membership change in a group bound to 10 policies.
//!
//! Run: `cargo bench -p idpsync-benches --bench projector`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use idpsync_engine::event::{Envelope, LoggedEvent};
use idpsync_engine::ids::{EventId, Member, ResourceId, Seq, Timestamp};
use idpsync_engine::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync_engine::reconcile::{GuardMemory, ReconcilePolicy};
use idpsync_engine::seal::WithoutKeys;
use idpsync_engine::{Cause, Command, DecideContext, Event, Origin, Outcome, Source, State, decide, projector};

/// Decides and folds a command on `state`, returning its outcome.
fn run(state: &mut State, command: Command) -> Outcome {
    let origin = Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    };
    let mut new_id = uuid::Uuid::now_v7;
    let policy = ReconcilePolicy::default();
    let guard = GuardMemory::default();
    let mut context = DecideContext {
        new_id: &mut new_id,
        policy: &policy,
        guard: &guard,
        now: Timestamp::now(),
    };
    let decision = decide(state, &command, &origin, &mut context).unwrap();
    for envelope in decision.events {
        let event = LoggedEvent {
            seq: state.seq().next(),
            recorded_at: Timestamp::now(),
            event_id: EventId::new(),
            envelope,
        };
        state.apply_mut(&event, &WithoutKeys);
    }
    decision.outcome
}

/// A tenant with 1,000 users in a group bound to 10 policies, and the event that adds one more
/// user to that group.
fn setup() -> (State, LoggedEvent) {
    let mut state = State::new();
    let mut users = Vec::new();
    for i in 0..1_001 {
        let profile = UserProfile {
            user_name: format!("user{i}"),
            ..UserProfile::default()
        };
        let Outcome::UserProvisioned(id) = run(
            &mut state,
            Command::ProvisionUser {
                owner: Owner::Operator,
                external_id: None,
                active: true,
                profile,
            },
        ) else {
            unreachable!()
        };
        users.push(id);
    }
    let newcomer = users.pop().unwrap();
    let members = users.into_iter().map(Member::User).collect();
    let Outcome::GroupCreated(group) = run(
        &mut state,
        Command::CreateGroup {
            owner: Owner::Operator,
            external_id: None,
            display_name: "eng".into(),
            members,
        },
    ) else {
        unreachable!()
    };
    for i in 0..10 {
        let resource = ResourceRef {
            kind: ResourceKind::Policy,
            id: ResourceId::new(&format!("policy-{i}")).unwrap(),
        };
        let groups = BindingGroups::Policy {
            sources: vec![group],
            destinations: vec![group],
        };
        run(&mut state, Command::SetBinding { resource, groups });
    }
    let event = LoggedEvent {
        seq: Seq(state.seq().0 + 1),
        recorded_at: Timestamp::now(),
        event_id: EventId::new(),
        envelope: Envelope {
            source: Source::Operator,
            cause: Cause::Unspecified,
            event: Event::MembersAdded {
                group,
                members: vec![Member::User(newcomer)],
            },
        },
    };
    (state, event)
}

fn membership_change(c: &mut Criterion) {
    let (state, event) = setup();
    c.bench_function("projector/member_added_to_group_bound_to_10_policies", |b| {
        b.iter_batched(
            || state.clone(),
            |mut state| {
                let pending = projector::begin(&state, &event.envelope.event);
                state.apply_mut(&event, &WithoutKeys);
                let changes = projector::finish(pending, &state, &event);
                assert_eq!(changes.len(), 20, "10 policies, as source and as destination");
                black_box(changes)
            },
            BatchSize::SmallInput,
        );
    });
}

/// The projector alone: the before and after states are prepared, only `begin` and `finish` run.
fn projector_only(c: &mut Criterion) {
    let (before, event) = setup();
    let after = before.apply(&event, &WithoutKeys);
    c.bench_function("projector/begin_and_finish_only", |b| {
        b.iter(|| {
            let pending = projector::begin(black_box(&before), &event.envelope.event);
            black_box(projector::finish(pending, black_box(&after), &event))
        });
    });
}

criterion_group!(benches, membership_change, projector_only);
criterion_main!(benches);
