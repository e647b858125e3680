//! Roles from groups: priority, ties, the default role, nested groups, the role changes the
//! projector emits, the default binding's rules, the last Owner (refused over SCIM, held in a
//! sync), and a property: the roles the projected changes add up to are always a from-scratch
//! computation's.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use uuid::Uuid;

use crate::absence::AbsenceRules;
use crate::command::{Command, Origin};
use crate::decide::{DecideContext, Outcome, decide};
use crate::event::{Cause, Source};
use crate::ids::{GroupId, IntegrationName, Member, ResourceId, SyncRunId, Timestamp, TokenId, UserId};
use crate::model::{BindingGroups, ResourceKind, ResourceRef, UserProfile};
use crate::reconcile::{
    DirectorySnapshot, ExternalMember, Guard, ListedUser, Membership, SnapshotGroup, SnapshotScope, SnapshotUser,
};
use crate::rejection::Rejection;
use crate::roles::{self, DEFAULT_BINDING, OWNER, RoleChange, all_roles, effective_role};
use crate::state::State;
use crate::testing::Harness;

fn role_binding(id: &str) -> ResourceRef {
    ResourceRef {
        kind: ResourceKind::Role,
        id: ResourceId::new(id).unwrap(),
    }
}

fn bind(h: &mut Harness, id: &str, role: &str, priority: i32, groups: &[GroupId]) {
    h.given(Command::SetBinding {
        resource: role_binding(id),
        groups: BindingGroups::Role {
            role: role.into(),
            priority,
            groups: groups.to_vec(),
        },
    });
}

fn set_default(h: &mut Harness, role: &str) {
    bind(h, DEFAULT_BINDING, role, 0, &[]);
}

fn role_of(h: &Harness, user: UserId) -> Option<String> {
    effective_role(&h.state, user).map(|held| held.role)
}

fn join(h: &mut Harness, group: GroupId, member: Member) {
    h.given(Command::AddMembers {
        group,
        members: vec![member],
    });
}

fn leave(h: &mut Harness, group: GroupId, member: Member) {
    h.given(Command::RemoveMembers {
        group,
        members: vec![member],
    });
}

/// The role changes since `mark`, as (user, old, new).
fn changes(h: &Harness, mark: usize) -> Vec<(UserId, Option<String>, Option<String>)> {
    h.roles[mark..]
        .iter()
        .map(|change| {
            (
                change.user,
                change.old.as_ref().map(|held| held.role.clone()),
                change.new.as_ref().map(|held| held.role.clone()),
            )
        })
        .collect()
}

fn some(role: &str) -> Option<String> {
    Some(role.to_owned())
}

#[test]
fn no_role_binding_no_roles_and_no_changes() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let eng = h.group("eng", &[Member::User(alice)]);
    leave(&mut h, eng, Member::User(alice));
    assert_eq!(role_of(&h, alice), None);
    assert!(h.roles.is_empty(), "{:?}", h.roles);
    assert!(!roles::roles_enabled(&h.state));
}

#[test]
fn the_highest_priority_wins_and_ties_go_to_the_lowest_binding_id() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let admins = h.group("admins", &[Member::User(alice)]);
    let auditors = h.group("auditors", &[Member::User(alice)]);
    let billing = h.group("billing", &[Member::User(alice)]);
    bind(&mut h, "b-auditors", "Auditor", 5, &[auditors]);
    assert_eq!(role_of(&h, alice), some("Auditor"));
    bind(&mut h, "z-admins", "Admin", 10, &[admins]);
    assert_eq!(role_of(&h, alice), some("Admin"));
    // Same priority as the admins' binding, lower id: it wins, whatever the order of creation.
    bind(&mut h, "a-billing", "Billing Admin", 10, &[billing]);
    let held = effective_role(&h.state, alice).unwrap();
    assert_eq!(held.role, "Billing Admin");
    assert_eq!(held.binding, Some(ResourceId::new("a-billing").unwrap()));
    assert_eq!(held.via, Some(billing));
}

#[test]
fn the_default_role_applies_when_nothing_matches() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let bob = h.user("bob");
    let admins = h.group("admins", &[Member::User(alice)]);
    let mark = h.roles.len();
    bind(&mut h, "admins", "admin", 1, &[admins]);
    // Turning roles on gives everyone a role: the built-in default for bob, written as listed.
    assert_eq!(role_of(&h, alice), some("Admin"));
    assert_eq!(role_of(&h, bob), some("User"));
    assert_eq!(effective_role(&h.state, bob).unwrap().binding, None);
    assert_eq!(changes(&h, mark).len(), 2);
    let mark = h.roles.len();
    set_default(&mut h, "Auditor");
    assert_eq!(role_of(&h, bob), some("Auditor"));
    assert_eq!(changes(&h, mark), vec![(bob, some("User"), some("Auditor"))]);
}

#[test]
fn nested_groups_count() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let team = h.group("sre", &[Member::User(alice)]);
    let ops = h.group("ops", &[]);
    let owners = h.group("owners", &[]);
    bind(&mut h, "owners", OWNER, 100, &[owners]);
    let mark = h.roles.len();
    // alice ∈ sre ∈ ops ∈ owners.
    join(&mut h, owners, Member::Group(ops));
    join(&mut h, ops, Member::Group(team));
    assert_eq!(changes(&h, mark), vec![(alice, some("User"), some(OWNER))]);
    let held = effective_role(&h.state, alice).unwrap();
    assert_eq!(held.via, Some(owners), "the binding's group is the cause");
    let mark = h.roles.len();
    leave(&mut h, ops, Member::Group(team));
    assert_eq!(changes(&h, mark), vec![(alice, some(OWNER), some("User"))]);
}

#[test]
fn deactivation_and_deletion_take_the_role_away() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let admins = h.group("admins", &[Member::User(alice)]);
    bind(&mut h, "admins", "Admin", 1, &[admins]);
    let mark = h.roles.len();
    h.given(Command::SetUserActive {
        user: alice,
        active: false,
    });
    h.given(Command::SetUserActive {
        user: alice,
        active: true,
    });
    h.given(Command::DeleteUser {
        user: alice,
        expected_version: None,
    });
    assert_eq!(
        changes(&h, mark),
        vec![
            (alice, some("Admin"), None),
            (alice, None, some("Admin")),
            (alice, some("Admin"), None)
        ]
    );
}

#[test]
fn a_new_user_gets_the_default_role_and_group_deletion_takes_a_role() {
    let mut h = Harness::new();
    let admins = h.group("admins", &[]);
    bind(&mut h, "admins", "Admin", 1, &[admins]);
    let mark = h.roles.len();
    let carol = h.user("carol");
    assert_eq!(changes(&h, mark), vec![(carol, None, some("User"))]);
    join(&mut h, admins, Member::User(carol));
    let mark = h.roles.len();
    h.given(Command::DeleteGroup {
        group: admins,
        expected_version: None,
    });
    assert_eq!(changes(&h, mark), vec![(carol, some("Admin"), some("User"))]);
}

#[test]
fn role_bindings_grant_no_network_access() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let admins = h.group("admins", &[Member::User(alice)]);
    bind(&mut h, "admins", "Admin", 1, &[admins]);
    assert!(h.access.is_empty(), "{:?}", h.access);
    assert!(crate::access::grants(&h.state, alice).is_empty());
    assert!(!h.state.is_bound(admins));
}

#[test]
fn role_bindings_are_checked() {
    let mut h = Harness::new();
    let g = h.group("g", &[]);
    let mut refused =
        |resource: ResourceRef, groups: BindingGroups| h.when(Command::SetBinding { resource, groups }).unwrap_err();
    let role = |role: &str, priority: i32, groups: Vec<GroupId>| BindingGroups::Role {
        role: role.into(),
        priority,
        groups,
    };
    assert!(matches!(
        refused(role_binding("x"), role("Admin", 1, vec![])),
        Rejection::Invalid { .. }
    ));
    assert!(matches!(
        refused(role_binding(DEFAULT_BINDING), role("Admin", 0, vec![g])),
        Rejection::Invalid { .. }
    ));
    assert!(matches!(
        refused(role_binding(DEFAULT_BINDING), role("Admin", 3, vec![])),
        Rejection::Invalid { .. }
    ));
    assert!(matches!(
        refused(role_binding("x"), role("  ", 1, vec![g])),
        Rejection::Invalid { .. }
    ));
    assert!(matches!(
        refused(role_binding("x"), BindingGroups::Groups(vec![g])),
        Rejection::BindingShape { .. }
    ));
    let route = ResourceRef {
        kind: ResourceKind::Route,
        id: ResourceId::new("r").unwrap(),
    };
    assert!(matches!(
        refused(route, role("Admin", 1, vec![g])),
        Rejection::BindingShape { .. }
    ));
    // Custom names are kept as given (trimmed); built-in ones are written as listed.
    bind(&mut h, "helpdesk", " Helpdesk ", 1, &[g]);
    bind(&mut h, "net", "network ADMIN", 2, &[g]);
    let kept: Vec<String> = h
        .state
        .bindings()
        .filter_map(|(_, groups)| match groups {
            BindingGroups::Role { role, .. } => Some(role.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(kept, vec!["Helpdesk".to_owned(), "Network Admin".to_owned()]);
}

fn scim() -> Origin {
    Origin {
        source: Source::Scim {
            token: TokenId(Uuid::from_u128(7)),
        },
        cause: Cause::Unspecified,
    }
}

/// Decides `command` as a SCIM request would, against the harness's state.
fn decide_over_scim(h: &Harness, command: Command) -> Result<usize, Rejection> {
    let mut counter = 1_000u128;
    let mut new_id = || {
        counter += 1;
        Uuid::from_u128(counter)
    };
    let mut context = DecideContext {
        new_id: &mut new_id,
        policy: &h.policy,
        guard: &h.guard,
        now: Timestamp(1_800_000_000_000_000),
    };
    decide(&h.state, &command, &scim(), &mut context).map(|decision| decision.events.len())
}

#[test]
fn scim_cannot_remove_the_last_owner_but_an_operator_can() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let bob = h.user("bob");
    let owners = h.group("owners", &[Member::User(alice)]);
    bind(&mut h, "owners", OWNER, 100, &[owners]);
    let removal = Command::RemoveMembers {
        group: owners,
        members: vec![Member::User(alice)],
    };
    for command in [
        removal.clone(),
        Command::SetUserActive {
            user: alice,
            active: false,
        },
        Command::DeleteUser {
            user: alice,
            expected_version: None,
        },
        Command::DeleteGroup {
            group: owners,
            expected_version: None,
        },
    ] {
        assert_eq!(decide_over_scim(&h, command), Err(Rejection::LastOwner { user: alice }));
    }
    // With a second owner, SCIM may remove the first.
    join(&mut h, owners, Member::User(bob));
    assert_eq!(decide_over_scim(&h, removal.clone()), Ok(1));
    leave(&mut h, owners, Member::User(bob));
    // Other SCIM changes pass; an operator is trusted with the last owner.
    assert_eq!(
        decide_over_scim(
            &h,
            Command::SetUserActive {
                user: bob,
                active: false
            }
        ),
        Ok(1)
    );
    h.given(removal);
    assert!(!roles::has_owner(&h.state));
}

fn idp() -> IntegrationName {
    IntegrationName::new("okta").unwrap()
}

/// Ten users of the IdP, all in `staff`; the first `owners` of them also in `owners`.
fn listing(run: u128, owners: usize) -> DirectorySnapshot {
    let users: Vec<SnapshotUser> = (0..10)
        .map(|i| SnapshotUser {
            external_id: format!("u{i}"),
            active: true,
            profile: UserProfile {
                user_name: format!("user{i}"),
                ..UserProfile::default()
            },
        })
        .collect();
    let edge = |group: &str, i: usize| Membership {
        group: group.into(),
        member: ExternalMember::User(format!("u{i}")),
    };
    let mut memberships: Vec<Membership> = (0..10).map(|i| edge("staff", i)).collect();
    memberships.extend((0..owners).map(|i| edge("owners", i)));
    DirectorySnapshot {
        integration: idp(),
        run: SyncRunId(Uuid::from_u128(run)),
        users: users.into_iter().map(ListedUser::from).collect(),
        groups: vec![
            SnapshotGroup {
                external_id: "staff".into(),
                display_name: "staff".into(),
            },
            SnapshotGroup {
                external_id: "owners".into(),
                display_name: "owners".into(),
            },
        ],
        scope: SnapshotScope::Complete { memberships },
        absence: AbsenceRules::IMMEDIATE,
        idp_times: Default::default(),
    }
}

fn reconcile(h: &mut Harness, snapshot: DirectorySnapshot, guard: Guard) -> Outcome {
    h.when(Command::Reconcile {
        snapshot: Box::new(snapshot),
        guard,
    })
    .unwrap()
    .1
}

#[test]
fn a_sync_that_removes_the_last_owner_is_held_until_confirmed() {
    let mut h = Harness::new();
    reconcile(&mut h, listing(1, 2), Guard::Enforce);
    let owners = h.state.owned_group(&idp(), "owners").unwrap();
    bind(&mut h, "owners", OWNER, 100, &[owners]);
    // One of two owners leaves the group: a small change, applied.
    let Outcome::Reconciled(report) = reconcile(&mut h, listing(2, 1), Guard::Enforce) else {
        panic!("a change that keeps an owner is applied")
    };
    assert!(!report.removes_last_owner);
    // The last one leaves it: held, though it takes no network access and is one of ten.
    let Outcome::Held(report) = reconcile(&mut h, listing(3, 0), Guard::Enforce) else {
        panic!("a change that removes the last owner is held")
    };
    assert!(report.removes_last_owner);
    assert_eq!(
        report.guard.removals, 0,
        "no access is taken: the share alone would pass"
    );
    assert!(roles::has_owner(&h.state), "nothing was applied");
    // Confirmed, it is applied.
    let Outcome::Reconciled(report) = reconcile(&mut h, listing(3, 0), Guard::Confirmed) else {
        panic!("a confirmed sync is applied")
    };
    assert!(report.removes_last_owner);
    assert!(!roles::has_owner(&h.state));
}

#[test]
fn roles_in_the_past_are_the_roles_of_the_state_then() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let admins = h.group("admins", &[]);
    bind(&mut h, "admins", "Admin", 1, &[admins]);
    join(&mut h, admins, Member::User(alice));
    let then = h.state.seq();
    leave(&mut h, admins, Member::User(alice));
    let mut past = State::new();
    for event in h.log.iter().filter(|event| event.seq <= then) {
        past.apply_mut(event, &crate::seal::WithoutKeys);
    }
    assert_eq!(all_roles(&past)[0].1.role, "Admin");
    assert_eq!(all_roles(&h.state)[0].1.role, "User");
}

/// A from-scratch answer, written apart from `crate::roles`: the groups a user is in by a
/// fixed-point closure, the bindings by a plain sort.
fn naive_roles(state: &State) -> BTreeMap<UserId, String> {
    let mut bindings: Vec<(i32, String, String, Vec<GroupId>)> = state
        .bindings()
        .filter_map(|(resource, groups)| match groups {
            BindingGroups::Role { role, priority, groups } => {
                Some((*priority, resource.id.as_str().to_owned(), role.clone(), groups.clone()))
            }
            _ => None,
        })
        .collect();
    if bindings.is_empty() {
        return BTreeMap::new();
    }
    let default = bindings
        .iter()
        .find(|binding| binding.1 == DEFAULT_BINDING)
        .map_or("User".to_owned(), |binding| binding.2.clone());
    bindings.retain(|binding| binding.1 != DEFAULT_BINDING);
    // Highest priority first, then lowest id.
    bindings.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut roles = BTreeMap::new();
    for user in state.users().filter(|user| user.active) {
        let mut groups: BTreeSet<GroupId> = state.groups_of(Member::User(user.id)).collect();
        loop {
            let more: BTreeSet<GroupId> = groups
                .iter()
                .flat_map(|group| state.groups_of(Member::Group(*group)))
                .collect();
            if more.is_subset(&groups) {
                break;
            }
            groups.extend(more);
        }
        let role = bindings
            .iter()
            .find(|binding| binding.3.iter().any(|group| groups.contains(group)))
            .map_or_else(|| default.clone(), |binding| binding.2.clone());
        roles.insert(user.id, role);
    }
    roles
}

/// The roles the projected changes add up to.
fn replayed(changes: &[RoleChange]) -> BTreeMap<UserId, String> {
    let mut roles = BTreeMap::new();
    for change in changes {
        match &change.new {
            Some(held) => roles.insert(change.user, held.role.clone()),
            None => roles.remove(&change.user),
        };
    }
    roles
}

#[derive(Clone, Debug)]
enum Step {
    Join(usize, usize),
    Nest(usize, usize),
    Leave(usize, usize),
    Bind(usize, i32, usize, Vec<usize>),
    Unbind(usize),
    Default(usize),
    Active(usize, bool),
    Delete(usize),
}

const ROLES: [&str; 4] = ["Owner", "Admin", "Auditor", "User"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..6usize, 0..5usize).prop_map(|(u, g)| Step::Join(u, g)),
        2 => (0..5usize, 0..5usize).prop_map(|(a, b)| Step::Nest(a, b)),
        3 => (0..6usize, 0..5usize).prop_map(|(u, g)| Step::Leave(u, g)),
        2 => (0..3usize, -2..3i32, 0..4usize, proptest::collection::vec(0..5usize, 1..3))
            .prop_map(|(b, p, r, gs)| Step::Bind(b, p, r, gs)),
        1 => (0..3usize).prop_map(Step::Unbind),
        1 => (0..4usize).prop_map(Step::Default),
        1 => (0..6usize, any::<bool>()).prop_map(|(u, a)| Step::Active(u, a)),
        1 => (0..6usize).prop_map(Step::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn projected_role_changes_always_add_up_to_a_from_scratch_computation(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let mut h = Harness::new();
        let users: Vec<UserId> = (0..6).map(|i| h.user(&format!("user{i}"))).collect();
        let groups: Vec<GroupId> = (0..5).map(|i| h.group(&format!("group{i}"), &[])).collect();
        for step in steps {
            let command = match step {
                Step::Join(u, g) => Command::AddMembers { group: groups[g], members: vec![Member::User(users[u])] },
                Step::Nest(a, b) => Command::AddMembers { group: groups[a], members: vec![Member::Group(groups[b])] },
                Step::Leave(u, g) => Command::RemoveMembers { group: groups[g], members: vec![Member::User(users[u])] },
                Step::Bind(b, priority, r, gs) => Command::SetBinding {
                    resource: role_binding(&format!("b{b}")),
                    groups: BindingGroups::Role {
                        role: ROLES[r].into(),
                        priority,
                        groups: gs.into_iter().map(|g| groups[g]).collect(),
                    },
                },
                Step::Unbind(b) => Command::RemoveBinding { resource: role_binding(&format!("b{b}")) },
                Step::Default(r) => Command::SetBinding {
                    resource: role_binding(DEFAULT_BINDING),
                    groups: BindingGroups::Role { role: ROLES[r].into(), priority: 0, groups: vec![] },
                },
                Step::Active(u, active) => Command::SetUserActive { user: users[u], active },
                Step::Delete(u) => Command::DeleteUser { user: users[u], expected_version: None },
            };
            // Refusals (a deleted user, a cycle, a missing binding) write nothing.
            let _ = h.when(command);
            let expected = naive_roles(&h.state);
            let computed: BTreeMap<UserId, String> =
                all_roles(&h.state).into_iter().map(|(user, held)| (user, held.role)).collect();
            prop_assert_eq!(&computed, &expected);
            prop_assert_eq!(&replayed(&h.roles), &expected);
        }
    }
}
