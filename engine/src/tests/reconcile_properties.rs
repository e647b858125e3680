//! Property (c): reconciling the same snapshot twice emits nothing the second time, whatever
//! the state before and whatever the snapshot (conflicting names, dangling edges, nesting).

use proptest::prelude::*;

use crate::absence::AbsenceRules;
use crate::command::Command;
use crate::ids::{IntegrationName, SyncRunId};
use crate::model::UserProfile;
use crate::reconcile::{
    DirectorySnapshot, ExternalMember, Guard, ListedUser, Membership, SnapshotGroup, SnapshotScope, SnapshotUser,
};
use crate::testing::Harness;

fn user() -> impl Strategy<Value = SnapshotUser> {
    (0u8..24, 0u8..12, any::<bool>(), proptest::option::of(0u8..4)).prop_map(|(id, name, active, title)| SnapshotUser {
        external_id: format!("u{id}"),
        active,
        profile: UserProfile {
            // Case variants of the same name collide, as they must.
            user_name: if name % 2 == 0 {
                format!("user{name}")
            } else {
                format!("USER{}", name - 1)
            },
            details: crate::model::ProfileDetails {
                title: title.map(|t| format!("title {t}")),
                ..Default::default()
            }
            .boxed(),
            ..UserProfile::default()
        },
    })
}

fn edge() -> impl Strategy<Value = Membership> {
    (0u8..8, any::<bool>(), 0u8..24).prop_map(|(group, nested, member)| Membership {
        group: format!("g{group}"),
        member: if nested {
            ExternalMember::Group(format!("g{}", member % 8))
        } else {
            ExternalMember::User(format!("u{member}"))
        },
    })
}

fn snapshot(complete: bool) -> impl Strategy<Value = DirectorySnapshot> {
    (
        proptest::collection::vec(user(), 0..20),
        proptest::collection::vec((0u8..8, 0u8..4), 0..8),
        proptest::collection::vec(edge(), 0..40),
        proptest::collection::vec(edge(), 0..10),
        proptest::collection::vec(0u8..24, 0..4),
    )
        .prop_map(move |(users, groups, edges, left, removed)| DirectorySnapshot {
            integration: IntegrationName::new("idp").unwrap(),
            run: SyncRunId(uuid::Uuid::from_u128(1)),
            users: users.into_iter().map(ListedUser::from).collect(),
            groups: groups
                .into_iter()
                .map(|(id, name)| SnapshotGroup {
                    external_id: format!("g{id}"),
                    display_name: format!("group {name}"),
                })
                .collect(),
            scope: if complete {
                SnapshotScope::Complete { memberships: edges }
            } else {
                SnapshotScope::Delta {
                    removed_users: removed.into_iter().map(|id| format!("u{id}")).collect(),
                    removed_groups: vec![],
                    joined: edges,
                    left,
                }
            },
            // The properties here are the plan's own: absence takes effect at once (the count
            // of listings has its own tests).
            absence: AbsenceRules::IMMEDIATE,
            idp_times: Default::default(),
        })
}

fn apply(h: &mut Harness, snapshot: &DirectorySnapshot) -> usize {
    h.when(Command::Reconcile {
        snapshot: Box::new(snapshot.clone()),
        guard: Guard::Confirmed,
    })
    .unwrap()
    .0
    .len()
}

proptest! {
    #[test]
    fn a_complete_snapshot_twice_emits_nothing(before in snapshot(true), after in snapshot(true)) {
        let mut h = Harness::new();
        apply(&mut h, &before);
        apply(&mut h, &after);
        prop_assert_eq!(apply(&mut h, &after), 0);
    }

    #[test]
    fn a_delta_twice_emits_nothing(before in snapshot(true), delta in snapshot(false)) {
        let mut h = Harness::new();
        apply(&mut h, &before);
        apply(&mut h, &delta);
        prop_assert_eq!(apply(&mut h, &delta), 0);
    }
}
