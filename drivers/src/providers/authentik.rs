//! authentik API v3: a bearer API token; `page` + `page_size` with a `pagination` object whose
//! `next` is a page number (0 at the end); groups with their members (`include_users`) and
//! parents as nested groups. Changes by `last_updated__gt` on users; groups have no timestamp
//! filter, so they and their members are listed in full each run. Deletions of users and
//! groups come from the events (`/events/events/?action=model_deleted`, newest first, read back
//! to the cursor's moment), which only incremental runs read. With `only_group_members`, the
//! users an incremental run brings into scope unchanged are read one by one
//! (`/core/users/{id}/`). Page numbers cannot overlap,
//! so a listing whose `pagination.count` changes between its pages fails (an object deleted
//! meanwhile may have made another be skipped); the next run retries.

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup, SnapshotUser};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::feed::{Feed, Gone, entry_time, unless_refused};
use super::person::Person;
use super::since::{rfc3339_millis, since_now, since_seconds, unix_seconds_of};
use crate::auth::Auth;
use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::keys::KeyError;
use crate::paging::{Page, Pager};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::SecretRef;
use idpsync_engine::reconcile::{Listing, ListingScope};

/// Page size: authentik's default maximum.
const PAGE_SIZE: &str = "100";

/// `provider = "authentik"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("authentik");

/// The keys of an authentik integration, besides the common ones; `base_url` (the API root,
/// `…/api/v3`) is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// An API token.
    api_token: SecretRef,
}

impl Settings for Keys {
    type Provider = Authentik;

    fn check(self, endpoints: Endpoints) -> Result<(Url, Authentik), KeyError> {
        let base_url = endpoints.base_url.ok_or(KeyError::missing("base_url"))?;
        Ok((
            base_url,
            Authentik {
                api_token: self.api_token,
            },
        ))
    }
}

/// A checked authentik integration: an API token.
#[derive(Debug)]
struct Authentik {
    api_token: SecretRef,
}

#[derive(Deserialize)]
struct Paginated<T> {
    pagination: Pagination,
    results: Vec<T>,
}

#[derive(Deserialize)]
struct Pagination {
    next: f64,
    count: Option<f64>,
}

#[derive(Deserialize)]
struct AuthentikUser {
    pk: i64,
    username: Option<String>,
    name: Option<String>,
    email: Option<String>,
    is_active: Option<bool>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct AuthentikGroup {
    pk: String,
    name: String,
    parent: Option<String>,
    #[serde(default)]
    parents: Vec<String>,
    #[serde(default)]
    users: Vec<i64>,
}

/// An event, as far as the feed reads it.
#[derive(Deserialize)]
struct AuthentikEvent {
    pk: String,
    created: String,
    context: EventContext,
}

#[derive(Deserialize)]
struct EventContext {
    model: Option<EventModel>,
}

/// The object an event is about.
#[derive(Deserialize)]
struct EventModel {
    model_name: String,
    pk: serde_json::Value,
}

impl AuthentikEvent {
    /// Notes a deleted user or group in `feed`, if the event is not older than `since`. One
    /// without its time or its object is not authentik's shape.
    fn note(self, feed: &mut Feed, since: i64) -> Result<(), String> {
        let created = unix_seconds_of(&self.created)
            .ok_or_else(|| format!("event {} has the time {:?}", self.pk, self.created))?;
        if created < since {
            return Ok(());
        }
        let model = self
            .context
            .model
            .ok_or_else(|| format!("deletion event {} names no object", self.pk))?;
        let id = match model.pk {
            serde_json::Value::String(id) => id,
            serde_json::Value::Number(id) => id.to_string(),
            other => return Err(format!("deletion event {} names the object {other}", self.pk)),
        };
        let at = entry_time(Some(&self.created));
        match model.model_name.as_str() {
            "user" => feed.gone(Gone::User(id), at),
            "group" => feed.gone(Gone::Group(id), at),
            _ => {}
        }
        Ok(())
    }
}

/// Reads the users and groups deleted since `since` (unix seconds): the events newest first,
/// until one older than `since`.
async fn read_events(client: &IdpClient, run: &Run<'_>, since: i64) -> Result<Feed, DriverError> {
    let mut feed = Feed::default();
    let mut seen = std::collections::HashSet::new();
    let mut wrong = None;
    let mut pager = Pager::new("events");
    while let Some(cursor) = pager.cursor() {
        let page = cursor.unwrap_or_else(|| "1".to_owned());
        let query = [
            ("action", "model_deleted"),
            ("context_model_app", "authentik_core"),
            ("ordering", "-created"),
            ("page", page.as_str()),
            ("page_size", PAGE_SIZE),
        ];
        let (body, _): (Paginated<AuthentikEvent>, _) =
            client.get(client.url("/events/events/", &query), &[], run).await?;
        // Newest first: a page that reaches back past `since` is the last one needed.
        let reached = body
            .results
            .iter()
            .any(|event| unix_seconds_of(&event.created).is_some_and(|created| created < since));
        let next = (body.pagination.next >= 1.0 && !reached).then(|| (body.pagination.next as u64).to_string());
        let mut add = |event: AuthentikEvent| {
            if !seen.insert(event.pk.clone()) {
                return false;
            }
            if let Err(error) = event.note(&mut feed, since) {
                wrong.get_or_insert(error);
            }
            true
        };
        pager.take(
            Page {
                items: body.results,
                next,
            },
            &mut add,
            run,
        )?;
        if let Some(message) = wrong.take() {
            return Err(DriverError::InvalidResponse {
                url: client.url("/events/events/", &[]).to_string(),
                message,
            });
        }
    }
    Ok(feed)
}

/// Lists `path` by page number.
async fn each<T: DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    path: &str,
    query: &[(&str, &str)],
    mut add: impl FnMut(T) -> bool,
) -> Result<(), DriverError> {
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let page = cursor.unwrap_or_else(|| "1".to_owned());
        let mut query = query.to_vec();
        query.extend([("page", page.as_str()), ("page_size", PAGE_SIZE)]);
        let (body, _): (Paginated<T>, _) = client.get(client.url(path, &query), &[], run).await?;
        pager.check_total(body.pagination.count.map(|count| count as u64))?;
        let next = (body.pagination.next >= 1.0).then(|| (body.pagination.next as u64).to_string());
        pager.take(
            Page {
                items: body.results,
                next,
            },
            &mut add,
            run,
        )?;
    }
    Ok(())
}

/// Service accounts are API clients, not people.
fn is_person(kind: Option<&str>) -> bool {
    !matches!(kind, Some("service_account" | "internal_service_account"))
}

#[async_trait::async_trait]
impl Provider for Authentik {
    fn auth(&self) -> Result<Auth, DriverError> {
        Auth::bearer(&self.api_token.resolve("api_token")?)
    }

    fn incremental(&self) -> bool {
        true
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let cursor = since_now();
        // The feed is read first, so that the listing is the newer of the two.
        let feed = match since {
            Some(since) => {
                let permission = "\"Can view Event\" to the API token's user";
                unless_refused(
                    run,
                    "the events",
                    permission,
                    read_events(client, run, since_seconds(since)?),
                )
                .await?
            }
            None => None,
        };
        let (mut listing, since_text) = match since {
            None => (run.listing(ListingScope::Complete), None),
            Some(cursor) => (
                run.listing(ListingScope::Incremental),
                Some(rfc3339_millis(since_seconds(cursor)?)),
            ),
        };
        let mut query = vec![("include_groups", "false")];
        if let Some(since_text) = &since_text {
            query.push(("last_updated__gt", since_text));
        }
        let mut service_accounts = std::collections::HashSet::new();
        each(
            client,
            run,
            "users".to_owned(),
            "/core/users/",
            &query,
            |user: AuthentikUser| match snapshot_user(&user) {
                Some(person) => listing.add_user(person),
                None => service_accounts.insert(user.pk),
            },
        )
        .await?;
        each(
            client,
            run,
            "groups".to_owned(),
            "/core/groups/",
            &[("include_users", "true")],
            |group: AuthentikGroup| {
                let mut new = listing.add_group(SnapshotGroup {
                    external_id: group.pk.clone(),
                    display_name: group.name,
                });
                for user in group.users.iter().filter(|user| !service_accounts.contains(*user)) {
                    new |= listing.add_member(&group.pk, ExternalMember::User(user.to_string()));
                }
                // A parent's members include its children's members.
                for parent in group.parent.iter().chain(&group.parents) {
                    new |= listing.add_member(parent, ExternalMember::Group(group.pk.clone()));
                }
                listing.refreshed(&group.pk);
                new
            },
        )
        .await?;
        if let Some(feed) = feed {
            feed.apply(&mut listing);
        }
        Ok(Fetched {
            listing,
            cursor: Some(cursor),
        })
    }

    async fn add_users(
        &self,
        client: &IdpClient,
        run: &Run<'_>,
        listing: &mut Listing,
        ids: &[String],
    ) -> Result<bool, DriverError> {
        for id in ids {
            // authentik's user ids are numbers: nothing else goes into a path.
            let Ok(pk) = id.parse::<i64>() else {
                return Err(DriverError::InvalidResponse {
                    url: client.url("/core/groups/", &[]).to_string(),
                    message: format!("a group names a member {id:?}, which is not an authentik user id"),
                });
            };
            match client
                .get(client.url(&format!("/core/users/{pk}/"), &[]), &[], run)
                .await
            {
                Ok((user, _)) => {
                    if let Some(person) = snapshot_user(&user) {
                        listing.add_user(person);
                    }
                }
                // Deleted since its group was read: the events say so.
                Err(DriverError::Status { status: 404, .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}

/// A user as the engine takes it; `None` for a service account (not a person).
fn snapshot_user(user: &AuthentikUser) -> Option<SnapshotUser> {
    if !is_person(user.kind.as_deref()) {
        return None;
    }
    let person = Person {
        user_name: user.username.as_deref(),
        email: user.email.as_deref(),
        display_name: user.name.as_deref(),
        ..Person::default()
    };
    Some(person.into_user(user.pk.to_string(), user.is_active.unwrap_or(false)))
}
