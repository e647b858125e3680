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
//!
//! Every entry of a feed has the IdP's time of the change (Okta's `published`, Auth0's `date`,
//! authentik's `created`): what the feed applies to the listing carries it
//! ([`Listing::idp_times`]), so that the events it causes, and a leaver's chain, say when the
//! IdP made the change and not only when the run read it.

use std::collections::BTreeMap;

use idpsync_engine::ids::Timestamp;
use idpsync_engine::reconcile::{ExternalMember, Listing, Membership};

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

/// What a feed reported since the cursor, each thing once, with the IdP's time of its latest
/// entry where the entry had one.
#[derive(Debug, Default)]
pub(super) struct Feed {
    gone: BTreeMap<Gone, Option<Timestamp>>,
    /// Users deactivated or suspended, and when: their state comes from the listing, their
    /// time from here.
    deactivated: BTreeMap<String, Timestamp>,
}

/// The IdP's time of a feed entry (RFC 3339), or `None` if the entry has none that reads as one.
pub(super) fn entry_time(text: Option<&str>) -> Option<Timestamp> {
    text.and_then(|text| Timestamp::parse_rfc3339(text).ok())
}

impl Feed {
    /// Notes one thing gone, at the IdP's time `at` where the entry says.
    pub(super) fn gone(&mut self, gone: Gone, at: Option<Timestamp>) {
        let held = self.gone.entry(gone).or_default();
        *held = (*held).max(at);
    }

    /// Notes a user deactivated or suspended at the IdP's time `at`.
    pub(super) fn deactivated(&mut self, user: String, at: Timestamp) {
        let held = self.deactivated.entry(user).or_insert(at);
        *held = (*held).max(at);
    }

    /// Adds what the feed reported to `listing` (an incremental one), except for the objects
    /// the listing holds: it was read after the feed, so it says how they are now. The IdP's
    /// times go with them, and with the users it deactivated (which the listing holds: they
    /// date the deactivation the listing shows, if it shows one).
    pub(super) fn apply(self, listing: &mut Listing) {
        for (gone, at) in self.gone {
            match gone {
                Gone::User(id) if !listing.has_user(&id) => {
                    if let Some(at) = at {
                        listing.idp_times().user(&id, at);
                    }
                    listing.removed_user(id);
                }
                Gone::Group(id) if !listing.has_group(&id) => {
                    if let Some(at) = at {
                        listing.idp_times().group(&id, at);
                    }
                    listing.removed_group(id);
                }
                Gone::Member { group, user } if !listing.has_group(&group) => {
                    let member = ExternalMember::User(user);
                    if let Some(at) = at {
                        let edge = Membership {
                            group: group.clone(),
                            member: member.clone(),
                        };
                        listing.idp_times().left(edge, at);
                    }
                    listing.delta_edge(&group, member, false);
                }
                Gone::User(_) | Gone::Group(_) | Gone::Member { .. } => {}
            }
        }
        for (user, at) in self.deactivated {
            listing.idp_times().user(&user, at);
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
            feed.gone(gone, None);
        }
        feed.apply(&mut listing);
        let named: Vec<&str> = listing.named_user_ids().collect();
        // `back` as listed; `gone` removed, once; `u1` leaves `g-other` only (`g-read` was
        // read again).
        assert_eq!(named, ["back", "gone", "u1"]);
        assert_eq!(listing.user_count(), 1);
    }

    #[test]
    fn the_idp_s_times_go_with_what_the_feed_applies() {
        let mut listing = Listing::new(ListingScope::Incremental);
        listing.add_user(user("back"));
        let mut feed = Feed::default();
        feed.gone(Gone::User("gone".into()), Some(Timestamp(10)));
        feed.gone(Gone::User("gone".into()), Some(Timestamp(30)));
        feed.gone(Gone::User("gone".into()), None);
        feed.gone(Gone::User("back".into()), Some(Timestamp(20)));
        feed.gone(Gone::User("undated".into()), None);
        feed.gone(Gone::Group("g".into()), Some(Timestamp(40)));
        let left = Gone::Member {
            group: "g2".into(),
            user: "u1".into(),
        };
        feed.gone(left, Some(Timestamp(50)));
        feed.deactivated("off".into(), Timestamp(60));
        feed.apply(&mut listing);
        let times = listing.idp_times();
        assert_eq!(times.of_user("gone"), Some(Timestamp(30)), "the latest entry's");
        assert_eq!(times.of_user("back"), None, "the listing holds it: not removed");
        assert_eq!(times.of_user("undated"), None);
        assert_eq!(times.of_group("g"), Some(Timestamp(40)));
        let edge = Membership {
            group: "g2".into(),
            member: ExternalMember::User("u1".into()),
        };
        assert_eq!(times.of_left(&edge), Some(Timestamp(50)));
        assert_eq!(times.of_user("off"), Some(Timestamp(60)));
    }

    #[test]
    fn entry_times_read_rfc3339_or_nothing() {
        assert_eq!(
            entry_time(Some("2026-03-02T09:00:00.123Z")),
            Some(Timestamp(1_772_442_000_123_000))
        );
        assert_eq!(entry_time(Some("yesterday")), None);
        assert_eq!(entry_time(None), None);
    }
}
