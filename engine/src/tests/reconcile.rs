//! Reconcile: minimal events, idempotence, ownership, and the mass-deactivation guard.

use crate::absence::AbsenceRules;
use crate::command::Command;
use crate::decide::Outcome;
use crate::event::Event;
use crate::ids::{IntegrationName, Member, ResourceId, SyncRunId};
use crate::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
use crate::reconcile::{
    DirectorySnapshot, ExternalMember, Guard, ListedUser, Membership, MissingUsers, ReconcileReport, SnapshotGroup,
    SnapshotScope, SnapshotUser,
};
use crate::testing::Harness;

pub(super) fn idp() -> IntegrationName {
    IntegrationName::new("entra").unwrap()
}

pub(super) fn user(external_id: &str, user_name: &str, active: bool) -> SnapshotUser {
    SnapshotUser {
        external_id: external_id.into(),
        active,
        profile: UserProfile {
            user_name: user_name.into(),
            ..UserProfile::default()
        },
    }
}

fn group(external_id: &str, name: &str) -> SnapshotGroup {
    SnapshotGroup {
        external_id: external_id.into(),
        display_name: name.into(),
    }
}

fn edge(group: &str, user: &str) -> Membership {
    Membership {
        group: group.into(),
        member: ExternalMember::User(user.into()),
    }
}

fn complete(
    users: impl IntoIterator<Item = impl Into<ListedUser>>,
    groups: Vec<SnapshotGroup>,
    memberships: Vec<Membership>,
) -> DirectorySnapshot {
    DirectorySnapshot {
        integration: idp(),
        run: SyncRunId(uuid::Uuid::from_u128(1)),
        users: users.into_iter().map(Into::into).collect(),
        groups,
        scope: SnapshotScope::Complete { memberships },
        // These tests are about the plan: absence takes effect at once (see `absence.rs`).
        absence: AbsenceRules::IMMEDIATE,
        idp_times: Default::default(),
    }
}

fn reconcile(h: &mut Harness, snapshot: DirectorySnapshot, guard: Guard) -> (Vec<Event>, Outcome) {
    h.when(Command::Reconcile {
        snapshot: Box::new(snapshot),
        guard,
    })
    .unwrap()
}

fn report(outcome: &Outcome) -> &ReconcileReport {
    match outcome {
        Outcome::Reconciled(report) | Outcome::Held(report) => report,
        other => panic!("not a reconcile outcome: {other:?}"),
    }
}

fn directory(n: usize) -> DirectorySnapshot {
    let users: Vec<SnapshotUser> = (0..n)
        .map(|i| user(&format!("u{i}"), &format!("user{i}@corp"), true))
        .collect();
    let memberships = (0..n).map(|i| edge("g1", &format!("u{i}"))).collect();
    complete(users, vec![group("g1", "VPN users")], memberships)
}

#[test]
fn the_same_snapshot_twice_emits_nothing() {
    let mut h = Harness::new();
    let (events, outcome) = reconcile(&mut h, directory(5), Guard::Enforce);
    assert_eq!(events.len(), 5 + 1 + 1, "5 users, 1 group, 1 membership event");
    assert_eq!(report(&outcome).users_created, 5);
    assert_eq!(report(&outcome).memberships_added, 5);
    let (again, outcome) = reconcile(&mut h, directory(5), Guard::Enforce);
    assert!(again.is_empty(), "{again:?}");
    assert!(report(&outcome).is_empty());
}

#[test]
fn joiner_mover_leaver_and_rename() {
    let mut h = Harness::new();
    let base = complete(
        vec![user("a", "alice", true), user("b", "bob", true)],
        vec![group("g1", "eng"), group("g2", "ops")],
        vec![edge("g1", "a"), edge("g2", "b")],
    );
    reconcile(&mut h, base, Guard::Confirmed);
    // Carol joins eng, bob moves from ops to eng, alice is disabled, ops is renamed.
    let next = complete(
        vec![
            user("a", "alice", false),
            user("b", "bob", true),
            user("c", "carol", true),
        ],
        vec![group("g1", "eng"), group("g2", "operations")],
        vec![edge("g1", "a"), edge("g1", "b"), edge("g1", "c")],
    );
    let (_, outcome) = reconcile(&mut h, next, Guard::Confirmed);
    let r = report(&outcome);
    assert_eq!((r.users_created, r.users_deactivated, r.groups_renamed), (1, 1, 1));
    assert_eq!((r.memberships_added, r.memberships_removed), (2, 1));
    let eng = h.state.owned_group(&idp(), "g1").unwrap();
    assert_eq!(h.state.direct_member_count(eng), 3);
    assert_eq!(
        h.state
            .group(h.state.owned_group(&idp(), "g2").unwrap())
            .unwrap()
            .display_name,
        "operations"
    );
    // Alice is deleted in the IdP: one event, her memberships go with her.
    let last = complete(
        vec![user("b", "bob", true), user("c", "carol", true)],
        vec![group("g1", "eng"), group("g2", "operations")],
        vec![edge("g1", "b"), edge("g1", "c")],
    );
    let (events, _) = reconcile(&mut h, last, Guard::Confirmed);
    assert!(matches!(events.as_slice(), [Event::UserDeleted { .. }]), "{events:?}");
}

#[test]
fn a_mass_deletion_is_held_until_confirmed() {
    let mut h = Harness::new();
    reconcile(&mut h, directory(20), Guard::Enforce);
    // The IdP suddenly lists 3 of 20 users: 85 % would be deleted.
    let (events, outcome) = reconcile(&mut h, directory(3), Guard::Enforce);
    assert!(matches!(outcome, Outcome::Held(_)));
    assert!(matches!(events.as_slice(), [Event::ReconcileHeld { .. }]));
    let held = report(&outcome).held.clone().unwrap();
    assert_eq!((held.owned_users, held.deletions, held.limit_permille), (20, 17, 100));
    assert_eq!(h.state.users_owned_by(&idp()).count(), 20, "nothing was applied");
    let (events, outcome) = reconcile(&mut h, directory(3), Guard::Confirmed);
    assert!(matches!(outcome, Outcome::Reconciled(_)));
    assert_eq!(
        events.iter().filter(|e| matches!(e, Event::UserDeleted { .. })).count(),
        17
    );
}

#[test]
fn an_empty_listing_never_empties_the_directory() {
    let mut h = Harness::new();
    reconcile(&mut h, directory(50), Guard::Enforce);
    let (_, outcome) = reconcile(
        &mut h,
        complete(Vec::<SnapshotUser>::new(), vec![], vec![]),
        Guard::Enforce,
    );
    assert!(matches!(outcome, Outcome::Held(_)));
    assert_eq!(h.state.user_count(), 50);
}

#[test]
fn small_changes_pass_the_guard() {
    let mut h = Harness::new();
    reconcile(&mut h, directory(20), Guard::Enforce);
    let (_, outcome) = reconcile(&mut h, directory(18), Guard::Enforce);
    assert!(
        matches!(outcome, Outcome::Reconciled(_)),
        "2 of 20 is exactly 10 %, not more"
    );
}

#[test]
fn other_owners_are_never_touched() {
    let mut h = Harness::new();
    let scim_user = h.user("carol");
    let (_, outcome) = reconcile(
        &mut h,
        complete(vec![user("c", "CAROL", true)], vec![], vec![]),
        Guard::Enforce,
    );
    assert_eq!(
        report(&outcome).conflicts.len(),
        1,
        "the userName belongs to a SCIM user"
    );
    reconcile(&mut h, directory(2), Guard::Enforce);
    assert!(h.state.user(scim_user).is_some());
    assert_eq!(h.state.user(scim_user).unwrap().owner, Owner::Scim);
}

#[test]
fn deltas_apply_changes_only() {
    let mut h = Harness::new();
    reconcile(&mut h, directory(10), Guard::Enforce);
    let g1 = h.state.owned_group(&idp(), "g1").unwrap();
    let delta = DirectorySnapshot {
        integration: idp(),
        run: SyncRunId(uuid::Uuid::from_u128(2)),
        users: vec![user("new", "newbie@corp", true).into()],
        groups: vec![],
        scope: SnapshotScope::Delta {
            removed_users: vec!["u0".into()],
            removed_groups: vec![],
            joined: vec![edge("g1", "new")],
            left: vec![edge("g1", "u1")],
        },
        absence: AbsenceRules::default(),
        idp_times: Default::default(),
    };
    let (_, outcome) = reconcile(&mut h, delta.clone(), Guard::Enforce);
    let r = report(&outcome);
    assert_eq!(
        (
            r.users_created,
            r.users_deleted,
            r.memberships_added,
            r.memberships_removed
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(h.state.direct_member_count(g1), 9);
    let (again, _) = reconcile(&mut h, delta, Guard::Enforce);
    assert!(again.is_empty());
}

#[test]
fn deactivating_missing_users_when_configured() {
    let mut h = Harness::new();
    h.policy.missing_users = MissingUsers::Deactivate;
    reconcile(&mut h, directory(20), Guard::Enforce);
    let (events, _) = reconcile(&mut h, directory(19), Guard::Enforce);
    assert!(
        matches!(
            events.as_slice(),
            [Event::UserDeactivated { .. }, Event::MembersRemoved { .. }]
        ),
        "{events:?}"
    );
    let gone = h.state.owned_user(&idp(), "u19").unwrap();
    assert!(!h.state.user(gone).unwrap().active);
    assert!(
        !h.state
            .is_direct_member(h.state.owned_group(&idp(), "g1").unwrap(), Member::User(gone))
    );
}

/// Binds the integration's groups (by IdP id) to a route, so that their members reach it.
fn bind(h: &mut Harness, route: &str, groups: &[&str]) {
    let groups = groups
        .iter()
        .map(|external_id| h.state.owned_group(&idp(), external_id).unwrap())
        .collect();
    h.given(Command::SetBinding {
        resource: ResourceRef {
            kind: ResourceKind::Route,
            id: ResourceId::new(route).unwrap(),
        },
        groups: BindingGroups::Groups(groups),
    });
}

/// `directory(n)` with users `u{from}`.. only in `g1`.
fn members_from(n: usize, from: usize) -> DirectorySnapshot {
    let mut snapshot = directory(n);
    snapshot.scope = SnapshotScope::Complete {
        memberships: (from..n).map(|i| edge("g1", &format!("u{i}"))).collect(),
    };
    snapshot
}

/// Hardening issue, must-fix 6: only deactivations and deletions were counted, so a run that
/// emptied the groups bound to the network's policies, or deleted them, took everyone's
/// access away without a hold.
#[test]
fn membership_removals_and_group_deletions_that_take_access_are_counted() {
    let mut h = Harness::new();
    reconcile(&mut h, directory(20), Guard::Enforce);
    bind(&mut h, "office", &["g1"]);
    // Half the users leave the bound group: 10 of 20 lose the route.
    let (events, outcome) = reconcile(&mut h, members_from(20, 10), Guard::Enforce);
    assert!(matches!(outcome, Outcome::Held(_)), "{outcome:?}");
    assert!(matches!(events.as_slice(), [Event::ReconcileHeld { .. }]), "{events:?}");
    assert_eq!(report(&outcome).guard.removals, 10);
    // The group goes: all 20 lose the route.
    let (_, outcome) = reconcile(&mut h, complete(directory(20).users, vec![], vec![]), Guard::Enforce);
    assert!(matches!(outcome, Outcome::Held(_)), "{outcome:?}");
    assert_eq!(report(&outcome).guard.removals, 20);
    assert_eq!(report(&outcome).groups_deleted, 1);
    assert_eq!(h.state.group_count(), 1, "nothing was applied");
}

/// What removes no access is not counted: a membership removal or a group deletion that no
/// binding reaches, and a move between groups that reach the same resources.
#[test]
fn removals_that_take_no_access_are_not_counted() {
    let mut h = Harness::new();
    reconcile(&mut h, directory(20), Guard::Enforce);
    let (_, outcome) = reconcile(&mut h, members_from(20, 10), Guard::Enforce);
    assert!(matches!(outcome, Outcome::Reconciled(_)), "g1 is bound to nothing");
    assert_eq!(report(&outcome).memberships_removed, 10);
    assert_eq!(report(&outcome).guard.removals, 0);

    // Everyone moves from g1 to g2, both bound to the same route.
    let mut h = Harness::new();
    let mut both = directory(20);
    both.groups.push(group("g2", "VPN, new"));
    reconcile(&mut h, both.clone(), Guard::Enforce);
    bind(&mut h, "office", &["g1", "g2"]);
    both.scope = SnapshotScope::Complete {
        memberships: (0..20).map(|i| edge("g2", &format!("u{i}"))).collect(),
    };
    let (_, outcome) = reconcile(&mut h, both, Guard::Enforce);
    assert!(matches!(outcome, Outcome::Reconciled(_)), "{outcome:?}");
    assert_eq!(report(&outcome).memberships_removed, 20);
    assert_eq!(report(&outcome).guard.removals, 0, "nobody loses the route");
}
