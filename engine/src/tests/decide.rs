//! `decide` and the fold, given / when / then.

use crate::command::Command;
use crate::decide::Outcome;
use crate::event::Event;
use crate::ids::ResourceId;
use crate::ids::{Member, Seq};
use crate::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
use crate::rejection::Rejection;
use crate::state::encode_snapshot;
use crate::testing::Harness;

fn profile(user_name: &str) -> UserProfile {
    UserProfile {
        user_name: user_name.to_owned(),
        ..UserProfile::default()
    }
}

fn policy(id: &str) -> ResourceRef {
    ResourceRef {
        kind: ResourceKind::Policy,
        id: ResourceId::new(id).unwrap(),
    }
}

#[test]
fn user_names_are_unique_case_insensitively() {
    let mut h = Harness::new();
    let alice = h.user("Alice@Example.com");
    let rejection = h
        .when(Command::ProvisionUser {
            owner: Owner::Scim,
            external_id: None,
            active: true,
            profile: profile("alice@example.COM"),
        })
        .unwrap_err();
    assert_eq!(
        rejection,
        Rejection::UserNameTaken {
            user_name: "alice@example.COM".into(),
            existing: alice
        }
    );
    assert_eq!(h.state.user_by_name("ALICE@EXAMPLE.COM").unwrap().id, alice);
    assert_eq!(h.state.user_count(), 1);
}

#[test]
fn a_rejected_command_decides_nothing() {
    let mut h = Harness::new();
    let before = h.head();
    let empty_name = Command::ProvisionUser {
        owner: Owner::Scim,
        external_id: None,
        active: true,
        profile: profile("  "),
    };
    assert!(matches!(h.when(empty_name), Err(Rejection::Invalid { .. })));
    let too_long = Command::ProvisionUser {
        owner: Owner::Scim,
        external_id: None,
        active: true,
        profile: profile(&"x".repeat(300)),
    };
    assert!(matches!(h.when(too_long), Err(Rejection::Invalid { .. })));
    assert_eq!(h.head(), before);
}

#[test]
fn put_without_active_never_deactivates() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let (events, _) = h
        .when(Command::ReplaceUser {
            user: alice,
            expected_version: None,
            external_id: None,
            active: None,
            profile: profile("alice"),
        })
        .unwrap();
    assert!(events.is_empty(), "an unchanged PUT decides nothing: {events:?}");
    assert!(h.state.user(alice).unwrap().active);
    let (events, _) = h
        .when(Command::ReplaceUser {
            user: alice,
            expected_version: None,
            external_id: None,
            active: Some(false),
            profile: profile("alice"),
        })
        .unwrap();
    assert_eq!(events, vec![Event::UserDeactivated { user: alice }]);
}

#[test]
fn a_stale_version_is_rejected() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let version = h.state.user(alice).unwrap().version;
    h.given(Command::SetUserActive {
        user: alice,
        active: false,
    });
    let stale = Command::DeleteUser {
        user: alice,
        expected_version: Some(version),
    };
    assert!(matches!(h.when(stale), Err(Rejection::VersionMismatch { .. })));
    let current = h.state.user(alice).unwrap().version;
    h.given(Command::DeleteUser {
        user: alice,
        expected_version: Some(current),
    });
    assert!(h.state.user(alice).is_none());
}

#[test]
fn adding_an_existing_member_is_a_no_op() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let group = h.group("vpn", &[Member::User(alice)]);
    let version = h.state.group(group).unwrap().version;
    let (events, _) = h
        .when(Command::AddMembers {
            group,
            members: vec![Member::User(alice)],
        })
        .unwrap();
    assert!(events.is_empty());
    assert_eq!(
        h.state.group(group).unwrap().version,
        version,
        "lastModified must not move"
    );
}

#[test]
fn removing_members_removes_exactly_those() {
    let mut h = Harness::new();
    let users: Vec<_> = (0..5).map(|i| h.user(&format!("u{i}"))).collect();
    let group = h.group("vpn", &users.iter().map(|u| Member::User(*u)).collect::<Vec<_>>());
    let (events, _) = h
        .when(Command::RemoveMembers {
            group,
            members: vec![Member::User(users[1]), Member::User(users[3])],
        })
        .unwrap();
    assert_eq!(
        events,
        vec![Event::MembersRemoved {
            group,
            members: vec![Member::User(users[1]), Member::User(users[3])]
        }]
    );
    let left: Vec<_> = h.state.direct_members(group).collect();
    assert_eq!(
        left,
        vec![Member::User(users[0]), Member::User(users[2]), Member::User(users[4])]
    );
}

#[test]
fn unknown_and_self_members_are_rejected() {
    let mut h = Harness::new();
    let group = h.group("vpn", &[]);
    let ghost = Member::User(crate::ids::UserId(uuid::Uuid::from_u128(999)));
    assert_eq!(
        h.when(Command::AddMembers {
            group,
            members: vec![ghost]
        })
        .unwrap_err(),
        Rejection::MemberNotFound(ghost)
    );
    assert_eq!(
        h.when(Command::AddMembers {
            group,
            members: vec![Member::Group(group)]
        })
        .unwrap_err(),
        Rejection::SelfMembership(group)
    );
}

#[test]
fn replace_members_emits_the_difference() {
    let mut h = Harness::new();
    let (a, b, c) = (h.user("a"), h.user("b"), h.user("c"));
    let group = h.group("vpn", &[Member::User(a), Member::User(b)]);
    let (events, _) = h
        .when(Command::ReplaceMembers {
            group,
            members: vec![Member::User(b), Member::User(c)],
        })
        .unwrap();
    assert_eq!(
        events,
        vec![
            Event::MembersRemoved {
                group,
                members: vec![Member::User(a)]
            },
            Event::MembersAdded {
                group,
                members: vec![Member::User(c)]
            },
        ]
    );
}

#[test]
fn deleting_a_user_ends_its_memberships() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let group = h.group("vpn", &[Member::User(alice)]);
    h.given(Command::DeleteUser {
        user: alice,
        expected_version: None,
    });
    assert_eq!(h.state.direct_member_count(group), 0);
    assert_eq!(h.state.groups_of(Member::User(alice)).count(), 0);
    let intervals = h.history.membership_intervals(group, Member::User(alice), h.head());
    assert_eq!(intervals.len(), 1);
    assert_eq!(intervals[0].until, Some(h.head()));
}

#[test]
fn deleting_a_group_ends_memberships_both_ways() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let inner = h.group("inner", &[Member::User(alice)]);
    let outer = h.group("outer", &[Member::Group(inner)]);
    h.given(Command::DeleteGroup {
        group: inner,
        expected_version: None,
    });
    assert_eq!(h.state.groups_of(Member::User(alice)).count(), 0);
    assert_eq!(h.state.direct_member_count(outer), 0);
    assert!(h.state.groups_by_name("INNER").next().is_none());
}

#[test]
fn bindings_need_existing_groups_and_the_right_shape() {
    let mut h = Harness::new();
    let group = h.group("vpn", &[]);
    let wrong_shape = Command::SetBinding {
        resource: policy("p1"),
        groups: BindingGroups::Groups(vec![group]),
    };
    assert!(matches!(h.when(wrong_shape), Err(Rejection::BindingShape { .. })));
    let ghost = crate::ids::GroupId(uuid::Uuid::from_u128(4242));
    let missing = Command::SetBinding {
        resource: policy("p1"),
        groups: BindingGroups::Policy {
            sources: vec![ghost],
            destinations: vec![],
        },
    };
    assert_eq!(h.when(missing).unwrap_err(), Rejection::GroupNotFound(ghost));
    let good = BindingGroups::Policy {
        sources: vec![group],
        destinations: vec![group],
    };
    h.given(Command::SetBinding {
        resource: policy("p1"),
        groups: good.clone(),
    });
    let (again, _) = h
        .when(Command::SetBinding {
            resource: policy("p1"),
            groups: good,
        })
        .unwrap();
    assert!(again.is_empty(), "setting the same binding again decides nothing");
}

#[test]
fn atomic_commands_apply_all_or_nothing() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let group = h.group("vpn", &[]);
    let head = h.head();
    let failing = Command::Atomic(vec![
        Command::UpdateGroup {
            group,
            expected_version: None,
            display_name: "renamed".into(),
            external_id: None,
        },
        Command::AddMembers {
            group,
            members: vec![Member::User(crate::ids::UserId(uuid::Uuid::from_u128(777)))],
        },
    ]);
    assert!(h.when(failing).is_err());
    assert_eq!(h.head(), head);
    assert_eq!(h.state.group(group).unwrap().display_name, "vpn");
    let (events, outcome) = h
        .when(Command::Atomic(vec![
            Command::UpdateGroup {
                group,
                expected_version: None,
                display_name: "renamed".into(),
                external_id: None,
            },
            Command::AddMembers {
                group,
                members: vec![Member::User(alice)],
            },
        ]))
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(outcome, Outcome::Atomic(vec![Outcome::Done, Outcome::Done]));
}

#[test]
fn inactive_users_stay_findable() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    h.given(Command::SetUserActive {
        user: alice,
        active: false,
    });
    assert_eq!(h.state.user_by_name("alice").unwrap().id, alice);
    assert!(!h.state.user(alice).unwrap().active);
}

#[test]
fn the_fold_is_reproducible() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let group = h.group("vpn", &[Member::User(alice)]);
    h.given(Command::UpdateGroup {
        group,
        expected_version: None,
        display_name: "vpn-eu".into(),
        external_id: Some("g1".into()),
    });
    h.given(Command::SetUserActive {
        user: alice,
        active: false,
    });
    assert_eq!(
        encode_snapshot(&h.refold(), &h.history),
        encode_snapshot(&h.state, &h.history)
    );
    assert_eq!(h.state.seq(), Seq(h.log.len() as u64));
}

/// Hardening issue, must-fix 9b: userNames were compared lowercased only, so a fullwidth
/// `ｕｓｅｒ@example.com` (a compatibility form) became a second user beside `user@example.com`.
#[test]
fn user_names_are_unique_by_compatibility_form_and_case_fold() {
    let mut h = Harness::new();
    let user = h.user("user@example.com");
    for other in [
        "ｕｓｅｒ@example.com",
        "USER@example.com",
        "ＵＳＥＲ@ＥＸＡＭＰＬＥ.ＣＯＭ",
    ] {
        let rejection = h
            .when(Command::ProvisionUser {
                owner: Owner::Scim,
                external_id: None,
                active: true,
                profile: profile(other),
            })
            .unwrap_err();
        assert_eq!(
            rejection,
            Rejection::UserNameTaken {
                user_name: other.into(),
                existing: user
            },
            "{other}"
        );
        assert_eq!(h.state.user_by_name(other).unwrap().id, user, "{other}");
    }
    // Case folding, not just lowercasing: `ß` folds to `ss`.
    let strasse = h.user("strasse@example.com");
    assert_eq!(h.state.user_by_name("STRAßE@example.com").unwrap().id, strasse);
    assert_eq!(h.state.user_count(), 2);
}

/// Hardening issue, must-fix 9b: a userName could hold control characters (tab, line breaks,
/// DEL) and bidirectional overrides, which make one name read as another.
#[test]
fn user_names_with_control_or_format_characters_are_refused() {
    let mut h = Harness::new();
    let before = h.head();
    let hidden = (0u32..=0x1F)
        .chain([0x7F, 0x85, 0x202E, 0x2066, 0x200B, 0x200D, 0xFEFF, 0x2028])
        .map(|code| char::from_u32(code).unwrap());
    for c in hidden {
        let rejection = h
            .when(Command::ProvisionUser {
                owner: Owner::Scim,
                external_id: None,
                active: true,
                profile: profile(&format!("ali{c}ce@example.com")),
            })
            .unwrap_err();
        assert!(
            matches!(&rejection, Rejection::Invalid { field, .. } if field == "userName"),
            "U+{:04X}: {rejection:?}",
            u32::from(c)
        );
    }
    let alice = h.user("alice@example.com");
    let renamed = h.when(Command::ReplaceUser {
        user: alice,
        expected_version: None,
        external_id: None,
        active: None,
        profile: profile("\u{202E}moc.elpmaxe@ecila"),
    });
    assert!(matches!(renamed, Err(Rejection::Invalid { .. })), "{renamed:?}");
    assert_eq!(h.head(), Seq(before.0 + 1), "only alice was written");
}

/// Hardening issue, must-fix 9c: a SCIM write could give a user an integration owns another
/// externalId (or none), after which the integration no longer finds it and cannot offboard
/// it when its IdP does.
#[test]
fn the_external_id_of_an_integration_owned_user_or_group_cannot_be_changed() {
    let mut h = Harness::new();
    let integration = crate::ids::IntegrationName::new("okta").unwrap();
    let owner = Owner::Integration(integration.clone());
    let Outcome::UserProvisioned(user) = h.given(Command::ProvisionUser {
        owner: owner.clone(),
        external_id: Some("00u1".into()),
        active: true,
        profile: profile("leaver@example.com"),
    }) else {
        unreachable!()
    };
    let Outcome::GroupCreated(group) = h.given(Command::CreateGroup {
        owner,
        external_id: Some("00g1".into()),
        display_name: "vpn".into(),
        members: vec![],
    }) else {
        unreachable!()
    };
    let refused = Rejection::OwnedExternalId {
        integration,
        external_id: Some("00u1".into()),
    };
    for external_id in [Some("hidden".to_owned()), None] {
        let replaced = h.when(Command::ReplaceUser {
            user,
            expected_version: None,
            external_id: external_id.clone(),
            active: None,
            profile: profile("leaver@example.com"),
        });
        assert_eq!(replaced.unwrap_err(), refused, "{external_id:?}");
        let updated = h.when(Command::UpdateGroup {
            group,
            expected_version: None,
            display_name: "vpn".into(),
            external_id,
        });
        assert!(matches!(updated, Err(Rejection::OwnedExternalId { .. })), "{updated:?}");
    }
    assert_eq!(
        h.state
            .owned_user(&crate::ids::IntegrationName::new("okta").unwrap(), "00u1"),
        Some(user)
    );
    // The same value is no change: the rest of the write goes through.
    let (events, _) = h
        .when(Command::ReplaceUser {
            user,
            expected_version: None,
            external_id: Some("00u1".into()),
            active: Some(false),
            profile: profile("leaver@example.com"),
        })
        .unwrap();
    assert!(
        matches!(events.as_slice(), [Event::UserDeactivated { .. }]),
        "{events:?}"
    );
    // A user no integration owns may change its externalId.
    let scim_user = h.user("scim@example.com");
    h.given(Command::ReplaceUser {
        user: scim_user,
        expected_version: None,
        external_id: Some("mine".into()),
        active: None,
        profile: profile("scim@example.com"),
    });
}
