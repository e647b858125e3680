//! The projector: access granted and revoked, through bindings and nested groups.

use crate::access::grants;
use crate::command::Command;
use crate::ids::Member;
use crate::ids::ResourceId;
use crate::model::{BindingGroups, BindingRole, ResourceKind, ResourceRef};
use crate::projector::AccessDirection::{Granted, Revoked};
use crate::testing::Harness;

fn resource(kind: ResourceKind, id: &str) -> ResourceRef {
    ResourceRef {
        kind,
        id: ResourceId::new(id).unwrap(),
    }
}

fn changes(h: &Harness, from: usize) -> Vec<(String, String, BindingRole, crate::projector::AccessDirection)> {
    h.access[from..]
        .iter()
        .map(|c| {
            (
                h.state.user(c.user).map_or("?".into(), |u| u.profile.user_name.clone()),
                c.resource.to_string(),
                c.role,
                c.direction,
            )
        })
        .collect()
}

#[test]
fn joining_and_leaving_a_bound_group() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let group = h.group("eng", &[]);
    h.given(Command::SetBinding {
        resource: resource(ResourceKind::Policy, "p1"),
        groups: BindingGroups::Policy {
            sources: vec![group],
            destinations: vec![],
        },
    });
    let mark = h.access.len();
    h.given(Command::AddMembers {
        group,
        members: vec![Member::User(alice)],
    });
    assert_eq!(
        changes(&h, mark),
        vec![("alice".into(), "policy/p1".into(), BindingRole::Source, Granted)]
    );
    let mark = h.access.len();
    h.given(Command::RemoveMembers {
        group,
        members: vec![Member::User(alice)],
    });
    assert_eq!(
        changes(&h, mark),
        vec![("alice".into(), "policy/p1".into(), BindingRole::Source, Revoked)]
    );
}

#[test]
fn deactivation_revokes_and_reactivation_grants() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let group = h.group("eng", &[Member::User(alice)]);
    h.given(Command::SetBinding {
        resource: resource(ResourceKind::Route, "r1"),
        groups: BindingGroups::Groups(vec![group]),
    });
    let mark = h.access.len();
    h.given(Command::SetUserActive {
        user: alice,
        active: false,
    });
    assert_eq!(
        changes(&h, mark),
        vec![("alice".into(), "route/r1".into(), BindingRole::Member, Revoked)]
    );
    assert!(grants(&h.state, alice).is_empty());
    let mark = h.access.len();
    h.given(Command::SetUserActive {
        user: alice,
        active: true,
    });
    assert_eq!(
        changes(&h, mark),
        vec![("alice".into(), "route/r1".into(), BindingRole::Member, Granted)]
    );
}

#[test]
fn nested_groups_pass_access_down_and_cycles_end() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let team = h.group("team", &[Member::User(alice)]);
    let department = h.group("department", &[]);
    h.given(Command::SetBinding {
        resource: resource(ResourceKind::NameserverGroup, "ns"),
        groups: BindingGroups::Groups(vec![department]),
    });
    let mark = h.access.len();
    h.given(Command::AddMembers {
        group: department,
        members: vec![Member::Group(team)],
    });
    assert_eq!(changes(&h, mark).len(), 1);
    assert_eq!(h.access[mark].via, department);
    // A cycle: department inside team. Nothing new, and nothing loops.
    let mark = h.access.len();
    h.given(Command::AddMembers {
        group: team,
        members: vec![Member::Group(department)],
    });
    assert!(changes(&h, mark).is_empty());
    assert_eq!(grants(&h.state, alice).len(), 1);
    // Breaking the link that carries access revokes it.
    let mark = h.access.len();
    h.given(Command::RemoveMembers {
        group: team,
        members: vec![Member::User(alice)],
    });
    assert_eq!(
        changes(&h, mark),
        vec![(
            "alice".into(),
            "nameserver-group/ns".into(),
            BindingRole::Member,
            Revoked
        )]
    );
}

#[test]
fn a_second_path_is_its_own_grant() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let first = h.group("first", &[Member::User(alice)]);
    let second = h.group("second", &[Member::User(alice)]);
    h.given(Command::SetBinding {
        resource: resource(ResourceKind::SetupKey, "k"),
        groups: BindingGroups::Groups(vec![first, second]),
    });
    assert_eq!(grants(&h.state, alice).len(), 2);
    let mark = h.access.len();
    h.given(Command::DeleteGroup {
        group: first,
        expected_version: None,
    });
    let revoked = changes(&h, mark);
    assert_eq!(revoked.len(), 1);
    assert_eq!(h.access[mark].via, first);
    assert_eq!(
        grants(&h.state, alice).len(),
        1,
        "alice still reaches the key through the second group"
    );
}

#[test]
fn rebinding_changes_only_what_moved() {
    let mut h = Harness::new();
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let a = h.group("a", &[Member::User(alice)]);
    let b = h.group("b", &[Member::User(bob)]);
    let dns = resource(ResourceKind::DnsManagement, "dns");
    h.given(Command::SetBinding {
        resource: dns.clone(),
        groups: BindingGroups::Groups(vec![a]),
    });
    let mark = h.access.len();
    h.given(Command::SetBinding {
        resource: dns.clone(),
        groups: BindingGroups::Groups(vec![a, b]),
    });
    assert_eq!(
        changes(&h, mark),
        vec![("bob".into(), "dns-management/dns".into(), BindingRole::Member, Granted)]
    );
    let mark = h.access.len();
    h.given(Command::RemoveBinding { resource: dns });
    assert_eq!(changes(&h, mark).len(), 2);
}
