//! Auth0 Management API v2: client credentials with the API `audience`; users by `page` +
//! `per_page` with `include_totals` (Auth0 lists at most 1,000 users this way: a full listing
//! of a larger tenant reads them from a users-export job, `export`); roles and/or
//! organizations as groups, their members by checkpoint (`from` + `take`, until no `next`).
//! Changes by `q=updated_at:[… TO *]`; roles and organizations are listed in full each run.
//! With `only_group_members`, the users an incremental run brings into scope unchanged are read
//! by id (`q=user_id:"…" OR …`).
//! Deletions from the log events (`/logs`), which only incremental runs read: by checkpoint
//! (`from=<log id>` + `take`) from where the previous run stopped, or, the first time, by a
//! search from the cursor's moment.
//! Page numbers cannot overlap, so a listing by page whose `total` changes between its pages
//! fails (an object deleted meanwhile may have made another be skipped); the next run retries.

mod export;

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup, SnapshotUser};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::feed::{Feed, Gone, entry_time, unless_refused};
use super::person::Person;
use super::since::{feed_position, rfc3339_millis, since_now, since_seconds};
use crate::auth::{Auth, Grant, TokenSource};
use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::keys::KeyError;
use crate::members::{MemberList, fetch_members};
use crate::paging::{Page, Pager, is_last_page, offset_of};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::SecretRef;
use idpsync_engine::reconcile::{Listing, ListingScope};

/// Auth0's maximum page size (`per_page`, `take`).
const PAGE_SIZE: u64 = 100;
/// The most users `/users` returns for one query, and the most log events a search by page
/// reaches.
const SEARCH_MAX: u64 = 1000;
/// The log event types of a user deleted: `sdu` (a successful user deletion) and `du`.
const DELETED: [&str; 2] = ["sdu", "du"];

/// `provider = "auth0"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("auth0");

/// The keys of an Auth0 integration, besides the common ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// The tenant's host (`acme.eu.auth0.com`), for the API root; `base_url` wins if both are
    /// given.
    domain: Option<String>,
    /// A machine-to-machine application.
    client_id: String,
    /// Its secret.
    client_secret: SecretRef,
    /// The Management API audience; `<origin>/api/v2/` when absent.
    audience: Option<String>,
    /// What becomes groups.
    #[serde(default)]
    groups: Auth0Groups,
}

/// What Auth0 objects become groups.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Auth0Groups {
    /// Roles.
    #[default]
    Roles,
    /// Organizations.
    Organizations,
    /// Both (ids prefixed `role:` and `org:`).
    Both,
}

impl Settings for Keys {
    type Provider = Auth0;

    fn check(self, endpoints: Endpoints) -> Result<(Url, Auth0), KeyError> {
        let base_url = match (endpoints.base_url, self.domain) {
            (Some(url), _) => url,
            (None, Some(domain)) => {
                Url::parse(&format!("https://{domain}/api/v2")).map_err(|error| KeyError::invalid("domain", error))?
            }
            (None, None) => {
                return Err(KeyError::Missing {
                    key: "domain",
                    instead: Some("`base_url`"),
                });
            }
        };
        let origin = base_url.origin().ascii_serialization();
        let token_url = match endpoints.token_url {
            Some(url) => url,
            None => {
                Url::parse(&format!("{origin}/oauth/token")).map_err(|error| KeyError::invalid("base_url", error))?
            }
        };
        let auth0 = Auth0 {
            token_url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            audience: self.audience.unwrap_or_else(|| format!("{origin}/api/v2/")),
            groups: self.groups,
        };
        Ok((base_url, auth0))
    }
}

/// A checked Auth0 integration: client credentials for the Management API.
#[derive(Debug)]
struct Auth0 {
    token_url: Url,
    client_id: String,
    client_secret: SecretRef,
    audience: String,
    groups: Auth0Groups,
}

/// A list answer: with `include_totals`, an object with the items under a key; without, a bare
/// array. Both are accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Listed<T> {
    Totals(Totals<T>),
    Bare(Vec<T>),
}

#[derive(Deserialize)]
struct Totals<T> {
    total: Option<u64>,
    next: Option<String>,
    #[serde(alias = "users", alias = "roles", alias = "organizations", alias = "members")]
    items: Vec<T>,
}

impl<T> Listed<T> {
    fn split(self) -> (Vec<T>, Option<u64>, Option<String>) {
        match self {
            Listed::Totals(totals) => (totals.items, totals.total, totals.next),
            Listed::Bare(items) => (items, None, None),
        }
    }
}

#[derive(Deserialize)]
struct Auth0User {
    user_id: String,
    email: Option<String>,
    username: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    name: Option<String>,
    blocked: Option<bool>,
}

/// A log event, as far as the feed reads it.
#[derive(Deserialize)]
struct LogEvent {
    log_id: String,
    /// When Auth0 logged the change.
    date: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    user_id: Option<String>,
}

impl LogEvent {
    /// Notes a deletion in `feed`; a deletion that names no user is not Auth0's shape.
    fn note(self, feed: &mut Feed) -> Result<(), String> {
        if DELETED.contains(&self.kind.as_str()) {
            let user = self
                .user_id
                .filter(|user| !user.is_empty())
                .ok_or_else(|| format!("log event {} ({}) names no user", self.log_id, self.kind))?;
            feed.gone(Gone::User(user), entry_time(self.date.as_deref()));
        }
        Ok(())
    }
}

/// The later of two log ids (Auth0's ids grow with time; longer is later).
fn later(one: String, other: String) -> String {
    if (other.len(), &other) > (one.len(), &one) {
        other
    } else {
        one
    }
}

/// Reads the log events after the checkpoint `from` to the end: the deletions, and the last
/// log id read (the next run's checkpoint).
async fn read_from_checkpoint(client: &IdpClient, run: &Run<'_>, from: &str) -> Result<(Feed, String), DriverError> {
    let mut feed = Feed::default();
    let mut position = from.to_owned();
    let mut wrong = None;
    let take = PAGE_SIZE.to_string();
    let mut pager = Pager::new("log events");
    while let Some(cursor) = pager.cursor() {
        let from = cursor.unwrap_or_else(|| position.clone());
        let url = client.url("/logs", &[("from", &from), ("take", &take)]);
        let (events, _): (Vec<LogEvent>, _) = client.get(url, &[], run).await?;
        let full = events.len() as u64 >= PAGE_SIZE;
        for event in &events {
            position = later(position, event.log_id.clone());
        }
        let next = full.then(|| position.clone());
        let mut add = |event: LogEvent| {
            if let Err(error) = event.note(&mut feed) {
                wrong.get_or_insert(error);
            }
            true
        };
        pager.take(Page { items: events, next }, &mut add, run)?;
        invalid(client, wrong.take())?;
    }
    Ok((feed, position))
}

/// Reads the deletions logged since `since` (unix seconds) by a search, and the newest log id
/// (the next run's checkpoint), read first so that nothing falls between the two. More
/// deletions than a search reaches make the cursor useless: everything is listed instead.
async fn read_by_search(client: &IdpClient, run: &Run<'_>, since: i64) -> Result<(Feed, Option<String>), DriverError> {
    let newest_query = [("sort", "date:-1"), ("page", "0"), ("per_page", "1")];
    let (newest, _): (Vec<LogEvent>, _) = client.get(client.url("/logs", &newest_query), &[], run).await?;
    let position = newest.into_iter().next().map(|event| event.log_id);
    let types = DELETED.map(|kind| format!("\"{kind}\"")).join(" OR ");
    let search = format!("type:({types}) AND date:[{} TO *]", rfc3339_millis(since));
    let mut feed = Feed::default();
    let mut wrong = None;
    let mut pager = Pager::new("log events");
    while let Some(cursor) = pager.cursor() {
        let offset = offset_of(cursor.as_deref());
        if offset >= SEARCH_MAX {
            return Err(DriverError::CursorExpired(format!(
                "more than {SEARCH_MAX} users deleted since the last run, more than a log search reaches"
            )));
        }
        let (page, per_page) = ((offset / PAGE_SIZE).to_string(), PAGE_SIZE.to_string());
        let query = [
            ("q", search.as_str()),
            ("sort", "date:1"),
            ("page", page.as_str()),
            ("per_page", per_page.as_str()),
        ];
        let (events, _): (Vec<LogEvent>, _) = client.get(client.url("/logs", &query), &[], run).await?;
        let end = offset + events.len() as u64;
        let next = (events.len() as u64 >= PAGE_SIZE).then(|| end.to_string());
        let mut add = |event: LogEvent| {
            if let Err(error) = event.note(&mut feed) {
                wrong.get_or_insert(error);
            }
            true
        };
        pager.take(Page { items: events, next }, &mut add, run)?;
        invalid(client, wrong.take())?;
    }
    Ok((feed, position))
}

/// The error of a log answer that is not Auth0's shape, if there was one.
fn invalid(client: &IdpClient, wrong: Option<String>) -> Result<(), DriverError> {
    match wrong {
        None => Ok(()),
        Some(message) => Err(DriverError::InvalidResponse {
            url: client.url("/logs", &[]).to_string(),
            message,
        }),
    }
}

/// Reads the deletions logged since `since`, and the cursor of the next run: its moment is
/// `next`'s, its checkpoint the last log event read.
async fn read_log(client: &IdpClient, run: &Run<'_>, since: &Cursor, next: &mut Cursor) -> Result<Feed, DriverError> {
    let (feed, position) = match feed_position(since) {
        Some(from) => {
            let (feed, position) = read_from_checkpoint(client, run, from).await?;
            (feed, Some(position))
        }
        None => read_by_search(client, run, since_seconds(since)?).await?,
    };
    if let Cursor::Since { feed: checkpoint, .. } = next {
        *checkpoint = position;
    }
    Ok(feed)
}

#[derive(Deserialize)]
struct Named {
    id: String,
    name: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct MemberRef {
    user_id: String,
}

/// Lists by `page` + `per_page` + `include_totals`.
async fn each_page<T: DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    path: &str,
    query: &[(&str, &str)],
    mut add: impl FnMut(T) -> bool,
) -> Result<Option<u64>, DriverError> {
    let mut total_seen = None;
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let offset = offset_of(cursor.as_deref());
        let (page, per_page) = ((offset / PAGE_SIZE).to_string(), PAGE_SIZE.to_string());
        let mut query = query.to_vec();
        query.extend([
            ("page", page.as_str()),
            ("per_page", per_page.as_str()),
            ("include_totals", "true"),
        ]);
        let (body, _): (Listed<T>, _) = client.get(client.url(path, &query), &[], run).await?;
        let (items, total, _) = body.split();
        pager.check_total(total)?;
        total_seen = total.or(total_seen);
        // Auth0 refuses pages past its search window; `total` above it is reported by the caller.
        let end = offset + items.len() as u64;
        let last = is_last_page(end, items.len(), PAGE_SIZE, total.map(|total| total.min(SEARCH_MAX)));
        let next = (!last).then(|| end.to_string());
        pager.take(Page { items, next }, &mut add, run)?;
    }
    Ok(total_seen)
}

/// Lists by checkpoint: `take`, then `from=<next>` until no `next`.
async fn each_checkpoint<T: DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    path: &str,
    mut add: impl FnMut(T) -> bool,
) -> Result<(), DriverError> {
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let take = PAGE_SIZE.to_string();
        let mut query = vec![("take", take.as_str())];
        if let Some(from) = &cursor {
            query.push(("from", from));
        }
        let (body, _): (Listed<T>, _) = client.get(client.url(path, &query), &[], run).await?;
        let (items, _, next) = body.split();
        let next = next.filter(|next| !next.is_empty());
        pager.take(Page { items, next }, &mut add, run)?;
    }
    Ok(())
}

impl Auth0 {
    async fn list_groups(&self, client: &IdpClient, run: &Run<'_>, listing: &mut Listing) -> Result<(), DriverError> {
        let kinds: &[(&str, &str, &str)] = match self.groups {
            Auth0Groups::Roles => &[("role", "/roles", "users")],
            Auth0Groups::Organizations => &[("org", "/organizations", "members")],
            Auth0Groups::Both => &[("role", "/roles", "users"), ("org", "/organizations", "members")],
        };
        for (prefix, path, members_path) in kinds {
            // (external id, name)
            let mut groups = Vec::new();
            let add = |group: Named| {
                let external_id = format!("{prefix}:{}", group.id);
                let display_name = group.display_name.or(group.name).unwrap_or_else(|| group.id.clone());
                let new = listing.add_group(SnapshotGroup {
                    external_id: external_id.clone(),
                    display_name: display_name.clone(),
                });
                if new {
                    groups.push((external_id, display_name));
                }
                new
            };
            // Roles page by number; organizations by checkpoint.
            if *prefix == "role" {
                each_page(client, run, "roles".to_owned(), path, &[], add).await?;
            } else {
                each_checkpoint(client, run, "organizations".to_owned(), path, add).await?;
            }
            let named = groups.iter().map(|(external, name)| (external.as_str(), name.as_str()));
            fetch_members(listing, &run.selection, named, |external_id| async move {
                // The external id is `<prefix>:<Auth0 id>`.
                let id = external_id.split_once(':').map_or("", |(_, id)| id);
                let mut members = MemberList::default();
                each_checkpoint(
                    client,
                    run,
                    format!("members of {external_id}"),
                    &format!("{path}/{id}/{members_path}"),
                    |member: MemberRef| members.add(ExternalMember::User(member.user_id)),
                )
                .await?;
                Ok(members.into_members())
            })
            .await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Provider for Auth0 {
    fn auth(&self) -> Result<Auth, DriverError> {
        let grant = Grant::ClientSecretPost {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.resolve("client_secret")?,
            extra: vec![("audience", self.audience.clone())],
        };
        Ok(TokenSource::auth(self.token_url.clone(), grant))
    }

    fn incremental(&self) -> bool {
        true
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let mut cursor = since_now();
        // The feed is read first, so that the listing is the newer of the two.
        let feed = match since {
            Some(since) => {
                let permission = "`read:logs` to the application on the Management API";
                unless_refused(
                    run,
                    "the log events",
                    permission,
                    read_log(client, run, since, &mut cursor),
                )
                .await?
            }
            None => None,
        };
        let (mut listing, query) = match since {
            None => (run.listing(ListingScope::Complete), None),
            Some(cursor) => (
                run.listing(ListingScope::Incremental),
                Some(format!("updated_at:[{} TO *]", rfc3339_millis(since_seconds(cursor)?))),
            ),
        };
        let mut query_pairs = Vec::new();
        if let Some(query) = &query {
            query_pairs.extend([("q", query.as_str()), ("search_engine", "v3")]);
        }
        let mut users = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let total = each_page(
            client,
            run,
            "users".to_owned(),
            "/users",
            &query_pairs,
            |user: Auth0User| {
                let new = seen.insert(user.user_id.clone());
                users.push(user);
                new
            },
        )
        .await?;
        if let Some(total) = total.filter(|total| *total > SEARCH_MAX) {
            if since.is_some() {
                // More changed users than a search reaches: the run lists everything instead.
                return Err(DriverError::CursorExpired(format!(
                    "{total} users changed since the last run, more than the users API lists ({SEARCH_MAX})"
                )));
            }
            // The pages stop at SEARCH_MAX: the whole tenant comes from an export job.
            users = export::export_users(client, run).await?;
        }
        for user in &users {
            listing.add_user(snapshot_user(user));
        }
        self.list_groups(client, run, &mut listing).await?;
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
        for chunk in ids.chunks(IDS_PER_SEARCH) {
            // A user id goes into the search quoted: one that could end the quote is refused.
            if let Some(id) = chunk.iter().find(|id| id.contains(['"', '\\'])) {
                return Err(DriverError::InvalidResponse {
                    url: client.url("/roles", &[]).to_string(),
                    message: format!("a role names a member {id:?}, which is not an Auth0 user id"),
                });
            }
            let search: Vec<String> = chunk.iter().map(|id| format!("user_id:\"{id}\"")).collect();
            let search = search.join(" OR ");
            let query = [("q", search.as_str()), ("search_engine", "v3")];
            let mut users = Vec::new();
            each_page(
                client,
                run,
                "users by id".to_owned(),
                "/users",
                &query,
                |user: Auth0User| {
                    users.push(user);
                    true
                },
            )
            .await?;
            for user in &users {
                listing.add_user(snapshot_user(user));
            }
        }
        Ok(true)
    }
}

/// Users read by id in one search: short of Auth0's limit on a query's length.
const IDS_PER_SEARCH: usize = 20;

/// A user as the engine takes it; a blocked user is inactive.
fn snapshot_user(user: &Auth0User) -> SnapshotUser {
    let person = Person {
        user_name: user.email.as_deref().or(user.username.as_deref()),
        email: user.email.as_deref(),
        given_name: user.given_name.as_deref(),
        family_name: user.family_name.as_deref(),
        display_name: user.name.as_deref(),
    };
    person.into_user(user.user_id.clone(), !user.blocked.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_domain() {
        let keys: Keys = crate::keys::parse(
            toml::from_str(
                "domain = \"acme.eu.auth0.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\ngroups = \"both\"",
            )
            .unwrap(),
        )
        .unwrap();
        let (base_url, auth0) = keys.check(Endpoints::default()).unwrap();
        assert_eq!(base_url.as_str(), "https://acme.eu.auth0.com/api/v2");
        assert_eq!(auth0.token_url.as_str(), "https://acme.eu.auth0.com/oauth/token");
        assert_eq!(auth0.audience, "https://acme.eu.auth0.com/api/v2/");
        assert_eq!(auth0.groups, Auth0Groups::Both);
    }
}
