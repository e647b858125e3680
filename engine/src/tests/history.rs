//! The folded history: members at a past seq, intervals, and seq at a time.

use std::collections::BTreeSet;

use crate::command::Command;
use crate::ids::{Member, Seq, Timestamp};
use crate::testing::Harness;

#[test]
fn members_at_a_past_seq() {
    let mut h = Harness::new();
    let (alice, bob) = (h.user("alice"), h.user("bob"));
    let team = h.group("team", &[Member::User(alice)]);
    let after_create = h.head();
    h.given(Command::AddMembers {
        group: team,
        members: vec![Member::User(bob)],
    });
    let after_bob = h.head();
    h.given(Command::RemoveMembers {
        group: team,
        members: vec![Member::User(alice)],
    });
    let (history, now) = (&h.history, h.head());
    assert_eq!(
        history.direct_members_at(team, after_create),
        BTreeSet::from([Member::User(alice)])
    );
    assert_eq!(
        history.direct_members_at(team, after_bob),
        BTreeSet::from([Member::User(alice), Member::User(bob)])
    );
    assert_eq!(
        history.direct_members_at(team, now),
        BTreeSet::from([Member::User(bob)])
    );
    assert!(history.direct_members_at(team, Seq(1)).is_empty());
}

#[test]
fn effective_members_at_a_past_seq_follow_nesting() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let inner = h.group("inner", &[Member::User(alice)]);
    let outer = h.group("outer", &[]);
    let before = h.head();
    h.given(Command::AddMembers {
        group: outer,
        members: vec![Member::Group(inner)],
    });
    h.given(Command::AddMembers {
        group: inner,
        members: vec![Member::Group(outer)],
    });
    let (history, now) = (&h.history, h.head());
    assert!(history.effective_users_at(outer, before).is_empty());
    assert_eq!(history.effective_users_at(outer, now), BTreeSet::from([alice]));
}

#[test]
fn intervals_open_and_close() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let team = h.group("team", &[Member::User(alice)]);
    let joined = h.head();
    h.given(Command::RemoveMembers {
        group: team,
        members: vec![Member::User(alice)],
    });
    let left = h.head();
    h.given(Command::AddMembers {
        group: team,
        members: vec![Member::User(alice)],
    });
    let again = h.head();
    let intervals = h.history.membership_intervals(team, Member::User(alice), h.head());
    assert_eq!(
        h.history.membership_intervals(team, Member::User(alice), left)[0].until,
        Some(left)
    );
    assert_eq!(
        h.history.membership_intervals(team, Member::User(alice), joined)[0].until,
        None,
        "as of when she joined, she had not left"
    );
    assert_eq!(intervals.len(), 2);
    assert_eq!((intervals[0].from, intervals[0].until), (joined, Some(left)));
    assert_eq!((intervals[1].from, intervals[1].until), (again, None));
}

#[test]
fn seq_at_a_time() {
    let mut h = Harness::new();
    h.user("a");
    h.user("b");
    h.user("c");
    let (history, now) = (&h.history, h.head());
    let second = history.recorded_at(Seq(2)).unwrap();
    assert_eq!(history.seq_at(second, now), Seq(2));
    assert_eq!(history.seq_at(Timestamp(second.0 + 1), now), Seq(2));
    assert_eq!(history.seq_at(Timestamp(second.0 - 1), now), Seq(1));
    assert_eq!(history.seq_at(Timestamp(0), now), Seq::ZERO);
    assert_eq!(history.seq_at(Timestamp(i64::MAX), now), Seq(3));
    assert_eq!(
        history.seq_at(Timestamp(i64::MAX), Seq(2)),
        Seq(2),
        "nothing past the state asked about"
    );
}

#[test]
fn the_user_timeline_lists_every_touching_record() {
    let mut h = Harness::new();
    let alice = h.user("alice");
    let team = h.group("team", &[Member::User(alice)]);
    h.given(Command::SetUserActive {
        user: alice,
        active: false,
    });
    h.given(Command::DeleteGroup {
        group: team,
        expected_version: None,
    });
    assert_eq!(
        h.history.member_events(Member::User(alice), h.head()),
        &[Seq(1), Seq(3), Seq(4), Seq(5)]
    );
    assert_eq!(h.history.member_events(Member::User(alice), Seq(3)), &[Seq(1), Seq(3)]);
}
