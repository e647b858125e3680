//! Member lists of IdPs that answer them one group at a time (Google, Okta, JumpCloud,
//! Keycloak, Auth0): fetched only for the groups the integration syncs, several at once.
//!
//! A run's [`Selection`] says which groups those are: the ones the group filter allows, and,
//! with `only_group_members`, every group nested in them (their users are in scope through the
//! nesting, so the engine needs their edges). Groups the filter drops are never asked for:
//! on a tenant of 20,000 groups with a filter that keeps 2,000, that is 18,000 requests
//! fewer. [`fetch_members`] keeps at most [`Selection::concurrency`] requests in flight; the
//! HTTP layer paces them on the vendor's rate-limit headers (`pacing::Pacer`).

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use idpsync_engine::reconcile::{ExternalMember, GroupFilter, Listing};

use crate::error::DriverError;

/// Which groups' members a run fetches, and how many at once.
#[derive(Clone, Debug)]
pub(crate) struct Selection {
    /// The integration's group filter.
    pub(crate) groups: GroupFilter,
    /// Whether groups nested in a selected group are fetched too (`only_group_members`).
    pub(crate) nested: bool,
    /// The most member requests in flight at once (at least 1).
    pub(crate) concurrency: usize,
}

impl Selection {
    /// Every group, nested ones too, one request at a time.
    #[cfg(test)]
    pub(crate) fn everything() -> Selection {
        Selection {
            groups: GroupFilter::default(),
            nested: true,
            concurrency: 1,
        }
    }

    /// Whether the members of a group of this name are fetched (before nesting is followed).
    pub(crate) fn wants(&self, name: &str) -> bool {
        self.groups.allows(name)
    }
}

/// One group's direct members as its pages bring them, each once: [`MemberList::add`] says
/// whether a member is new, which is what the pager needs to tell a repeated page.
#[derive(Default)]
pub(crate) struct MemberList {
    members: Vec<ExternalMember>,
    seen: HashSet<ExternalMember>,
}

impl MemberList {
    /// Adds a member; whether it was not in the list yet.
    pub(crate) fn add(&mut self, member: ExternalMember) -> bool {
        let new = self.seen.insert(member.clone());
        if new {
            self.members.push(member);
        }
        new
    }

    /// The members, in the order they came.
    pub(crate) fn into_members(self) -> Vec<ExternalMember> {
        self.members
    }
}

/// Fetches the direct members of every group in `groups` (id and name) the selection wants,
/// and of the groups nested in them when it says so, with `fetch` (a group's id → its
/// complete direct member list), and adds them to `listing`, each group's list marked
/// complete. At most `selection.concurrency`
/// fetches run at once; the first error ends the listing (nothing partial is returned).
pub(crate) async fn fetch_members<'g, F, Fut>(
    listing: &mut Listing,
    selection: &Selection,
    groups: impl IntoIterator<Item = (&'g str, &'g str)>,
    fetch: F,
) -> Result<(), DriverError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Vec<ExternalMember>, DriverError>>,
{
    let mut queue: VecDeque<String> = groups
        .into_iter()
        .filter(|(_, name)| selection.wants(name))
        .map(|(id, _)| id.to_owned())
        .collect();
    let mut scheduled: HashSet<String> = queue.iter().cloned().collect();
    let mut in_flight = FuturesUnordered::new();
    let concurrency = selection.concurrency.max(1);
    loop {
        while in_flight.len() < concurrency {
            let Some(group) = queue.pop_front() else { break };
            let members = fetch(group.clone());
            in_flight.push(async move { (group, members.await) });
        }
        let Some((group, members)) = in_flight.next().await else {
            return Ok(());
        };
        for member in members? {
            if let ExternalMember::Group(nested) = &member
                && selection.nested
                && scheduled.insert(nested.clone())
            {
                queue.push_back(nested.clone());
            }
            listing.add_member(&group, member);
        }
        listing.refreshed(&group);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use idpsync_engine::reconcile::ListingScope;

    use super::*;

    fn selection(include: &[&str], nested: bool, concurrency: usize) -> Selection {
        Selection {
            groups: GroupFilter::new(include.iter().map(|s| s.to_string()).collect(), vec![]).unwrap(),
            nested,
            concurrency,
        }
    }

    /// vpn-eu (g1) holds alice and the group eng (g3); eng holds bob; other (g2) holds carol.
    fn directory() -> HashMap<&'static str, Vec<ExternalMember>> {
        HashMap::from([
            (
                "g1",
                vec![ExternalMember::User("alice".into()), ExternalMember::Group("g3".into())],
            ),
            ("g2", vec![ExternalMember::User("carol".into())]),
            ("g3", vec![ExternalMember::User("bob".into())]),
        ])
    }

    const GROUPS: [(&str, &str); 3] = [("g1", "vpn-eu"), ("g2", "other"), ("g3", "eng")];

    async fn run(selection: &Selection) -> (Vec<String>, usize) {
        let directory = directory();
        let asked = Mutex::new(Vec::new());
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let mut listing = Listing::new(ListingScope::Complete);
        fetch_members(&mut listing, selection, GROUPS, |group| {
            asked.lock().unwrap().push(group.clone());
            let members = directory[group.as_str()].clone();
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(members)
            }
        })
        .await
        .unwrap();
        let mut asked = asked.into_inner().unwrap();
        asked.sort();
        (asked, most.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn only_selected_groups_are_fetched() {
        let (asked, _) = run(&selection(&["vpn-*"], false, 4)).await;
        assert_eq!(asked, ["g1"]);
    }

    #[tokio::test]
    async fn nested_groups_are_followed_when_asked() {
        let (asked, _) = run(&selection(&["vpn-*"], true, 4)).await;
        assert_eq!(asked, ["g1", "g3"]);
    }

    #[tokio::test]
    async fn requests_stay_within_the_concurrency_limit() {
        let (asked, most) = run(&selection(&[], false, 2)).await;
        assert_eq!(asked, ["g1", "g2", "g3"]);
        assert_eq!(most, 2, "two at once, never three");
        let (_, most) = run(&selection(&[], false, 1)).await;
        assert_eq!(most, 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_fails_the_listing() {
        let mut listing = Listing::new(ListingScope::Complete);
        let result = fetch_members(&mut listing, &selection(&[], false, 2), GROUPS, |group| async move {
            if group == "g2" {
                Err(DriverError::PartialListing {
                    resource: group,
                    reason: "test".into(),
                })
            } else {
                Ok(Vec::new())
            }
        })
        .await;
        assert!(matches!(result, Err(DriverError::PartialListing { .. })));
    }
}
