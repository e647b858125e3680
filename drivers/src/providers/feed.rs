//! Deletion feeds (Okta's System Log, Auth0's log events, authentik's events): what an IdP's
//! own record of changes says was deleted since an incremental run's cursor, and how that joins
//! the run's listing.
//!
//! A feed entry is the IdP's word, a positive signal like a SCIM `DELETE`: it takes effect in
//! the run that reads it, without the witnesses an absence needs (`docs/absences.md`). A feed
//! that cannot be read, or answers in a shape that is not the vendor's, fails the run like any
//! other listing: nothing is applied and the cursor stays, except for a feed the IdP refuses
//! for want of a permission (401 or 403, [`unless_refused`]): the run goes on without it, with a
//! warning, and deletions take effect by absence at the full runs, as without a feed. Each
//! incremental run asks again, so the feed comes back as soon as the permission is granted.
//!
//! A run reads its feed before its listing, so the listing is the newer of the two: an object
//! the listing holds keeps what the listing says, whatever the feed reported of it (a user
//! deleted and created again, a member removed and added back, within the feed's overlap).

use std::collections::BTreeSet;

use idpsync_engine::reconcile::{ExternalMember, Listing};

use crate::client::Run;
use crate::error::DriverError;

/// Something a feed reports as gone.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Gone {
    /// A user deleted, by the IdP's id.
    User(String),
    /// A group deleted.
    Group(String),
    /// A user taken out of a group.
    Member {
        /// The group's id.
        group: String,
        /// The user's id.
        user: String,
    },
}

/// What a feed reported since the cursor, each thing once.
#[derive(Debug, Default)]
pub(super) struct Feed {
    gone: BTreeSet<Gone>,
}

impl Feed {
    /// Notes one thing gone.
    pub(super) fn gone(&mut self, gone: Gone) {
        self.gone.insert(gone);
    }

    /// Adds what the feed reported to `listing` (an incremental one), except for the objects
    /// the listing holds: it was read after the feed, so it says how they are now.
    pub(super) fn apply(self, listing: &mut Listing) {
        for gone in self.gone {
            match gone {
                Gone::User(id) if !listing.has_user(&id) => listing.removed_user(id),
                Gone::Group(id) if !listing.has_group(&id) => listing.removed_group(id),
                Gone::Member { group, user } if !listing.has_group(&group) => {
                    listing.delta_edge(&group, ExternalMember::User(user), false);
                }
                Gone::User(_) | Gone::Group(_) | Gone::Member { .. } => {}
            }
        }
    }
}

/// Reads a feed with `read`; `None`, with a warning on the run, when the IdP refuses it (401
/// or 403: the integration lacks `permission`). Any other failure fails the run.
pub(super) async fn unless_refused<T>(
    run: &Run<'_>,
    feed: &str,
    permission: &str,
    read: impl Future<Output = Result<T, DriverError>>,
) -> Result<Option<T>, DriverError> {
    match read.await {
        Ok(read) => Ok(Some(read)),
        Err(DriverError::Unauthorized { url, status, message }) => {
            run.warn(format!(
                "deletion feed off: {feed} refused (HTTP {status} from {url}: {message}); grant {permission} \
                 so that deletions take effect at the next poll; until then they take effect by absence at the full runs"
            ));
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::person::Person;
    use idpsync_engine::reconcile::{ListingScope, SnapshotGroup, SnapshotUser};

    fn user(id: &str) -> SnapshotUser {
        Person {
            user_name: Some(id),
            ..Person::default()
        }
        .into_user(id.to_owned(), true)
    }

    #[test]
    fn what_the_listing_holds_wins_over_the_feed() {
        let mut listing = Listing::new(ListingScope::Incremental);
        listing.add_user(user("back"));
        listing.add_group(SnapshotGroup {
            external_id: "g-read".into(),
            display_name: "read".into(),
        });
        let mut feed = Feed::default();
        for gone in [
            Gone::User("gone".into()),
            Gone::User("gone".into()),
            Gone::User("back".into()),
            Gone::Group("g-gone".into()),
            Gone::Group("g-read".into()),
            Gone::Member {
                group: "g-read".into(),
                user: "u1".into(),
            },
            Gone::Member {
                group: "g-other".into(),
                user: "u1".into(),
            },
        ] {
            feed.gone(gone);
        }
        feed.apply(&mut listing);
        let named: Vec<&str> = listing.named_user_ids().collect();
        // `back` as listed; `gone` removed, once; `u1` leaves `g-other` only (`g-read` was
        // read again).
        assert_eq!(named, ["back", "gone", "u1"]);
        assert_eq!(listing.user_count(), 1);
    }
}
