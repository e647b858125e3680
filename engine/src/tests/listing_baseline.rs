//! A listing compared with the state as it is read: users listed as the state holds them are
//! the state's records, shared; anything else is the driver's copy; and the plan is the same
//! either way, even when the state moved on after the listing was read.

use std::sync::Arc;

use super::reconcile::{idp, user};
use crate::command::Command;
use crate::decide::Outcome;
use crate::event::Event;
use crate::ids::{IntegrationName, SyncRunId};
use crate::reconcile::{
    Baseline, DirectorySnapshot, ExternalMember, Guard, ListedUser, Listing, ListingScope, ScopeRules, SnapshotGroup,
    SnapshotUser, SyncInput,
};
use crate::testing::Harness;

/// A complete listing of `users`, all in one group, compared with `h`'s state when given.
fn listing(h: Option<&Harness>, users: &[SnapshotUser]) -> Listing {
    let baseline = h.map(|h| Baseline::new(Arc::new(h.state.clone()), idp()));
    let mut listing = Listing::compared_with(ListingScope::Complete, baseline);
    listing.add_group(SnapshotGroup {
        external_id: "g1".into(),
        display_name: "vpn".into(),
    });
    for user in users {
        listing.add_user(user.clone());
        listing.add_member("g1", ExternalMember::User(user.external_id.clone()));
    }
    listing
}

/// The snapshot the writer makes of `listing` against `h`'s state.
fn snapshot_of(h: &Harness, listing: Listing) -> DirectorySnapshot {
    let input = SyncInput {
        integration: idp(),
        run: SyncRunId::new(),
        listing,
        rules: ScopeRules::default(),
    };
    input.into_snapshot(&h.state)
}

/// Reconciles `listing` as the writer does: made a snapshot against the state, then planned.
fn reconcile(h: &mut Harness, listing: Listing) -> Vec<Event> {
    let snapshot = snapshot_of(h, listing);
    let (events, outcome) = h
        .when(Command::Reconcile {
            snapshot: Box::new(snapshot),
            guard: Guard::Confirmed,
        })
        .unwrap();
    assert!(matches!(outcome, Outcome::Reconciled(_)), "{outcome:?}");
    events
}

fn directory() -> Vec<SnapshotUser> {
    vec![
        user("u0", "ann@corp", true),
        user("u1", "bob@corp", true),
        user("u2", "cy@corp", true),
    ]
}

#[test]
fn users_listed_as_the_state_holds_them_are_shared_and_the_others_are_copies() {
    let mut h = Harness::new();
    reconcile(&mut h, listing(None, &directory()));
    let read = [
        user("u0", "ann@corp", true),
        user("u1", "bob.renamed@corp", true),
        user("u2", "cy@corp", false),
        user("u3", "dee@corp", true),
    ];
    let snapshot = snapshot_of(&h, listing(Some(&h), &read));
    let shared: Vec<(&str, bool)> = snapshot
        .users
        .iter()
        .map(|user| (user.external_id(), user.is_shared()))
        .collect();
    assert_eq!(
        shared,
        [("u0", true), ("u1", false), ("u2", false), ("u3", false)],
        "only the user read unchanged is the state's record"
    );
    let (events, _) = h
        .when(Command::Reconcile {
            snapshot: Box::new(snapshot),
            guard: Guard::Confirmed,
        })
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        ["user.updated", "user.deactivated", "user.provisioned", "members.added"],
        "{events:?}"
    );
    // Read again, everything is as held: shared, and nothing to do.
    let shared_again = snapshot_of(&h, listing(Some(&h), &read));
    assert!(shared_again.users.iter().all(ListedUser::is_shared));
    let again = listing(Some(&h), &read);
    assert!(reconcile(&mut h, again).is_empty());
}

#[test]
fn a_user_of_another_integration_is_never_shared() {
    let mut h = Harness::new();
    reconcile(&mut h, listing(None, &directory()));
    let other = Baseline::new(Arc::new(h.state.clone()), IntegrationName::new("okta").unwrap());
    let mut compared = Listing::compared_with(ListingScope::Complete, Some(other));
    compared.add_user(user("u0", "ann@corp", true));
    assert!(!snapshot_of(&h, compared).users[0].is_shared());
}

#[test]
fn a_baseline_the_state_moved_on_from_still_plans_what_the_idp_listed() {
    let mut h = Harness::new();
    reconcile(&mut h, listing(None, &directory()));
    // Read while the state holds ann@corp: shared.
    let read_then = listing(Some(&h), &directory());
    // Before it is planned, an earlier run renames the user.
    let mut renamed = directory();
    renamed[0].profile.user_name = "ann.other@corp".into();
    reconcile(&mut h, listing(None, &renamed));
    let u0 = h.state.owned_user(&idp(), "u0").unwrap();
    assert_eq!(h.state.user(u0).unwrap().profile.user_name, "ann.other@corp");
    // The listing read before is planned against the state as it is now: back to what the
    // IdP listed.
    let events = reconcile(&mut h, read_then);
    assert!(matches!(events.as_slice(), [Event::UserUpdated { .. }]), "{events:?}");
    assert_eq!(h.state.user(u0).unwrap().profile.user_name, "ann@corp");
}

#[test]
fn a_shared_user_is_stored_as_the_user_it_stands_for() {
    let mut h = Harness::new();
    reconcile(&mut h, listing(None, &directory()));
    let snapshot = snapshot_of(&h, listing(Some(&h), &directory()));
    let shared = &snapshot.users[0];
    assert!(shared.is_shared());
    let copy = ListedUser::from(directory().remove(0));
    assert!(!copy.is_shared());
    assert_eq!(*shared, copy);
    let bytes = postcard::to_allocvec(shared).unwrap();
    assert_eq!(bytes, postcard::to_allocvec(&directory()[0]).unwrap());
    let back: ListedUser = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, *shared);
    assert!(!back.is_shared(), "read back, it is a copy");
}
