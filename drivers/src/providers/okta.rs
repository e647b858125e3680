//! Okta: `SSWS` API token or OAuth 2.0 with `private_key_jwt`; bare JSON arrays paged by the
//! `Link: <…>; rel="next"` header; changes by `search=lastUpdated gt "…"` on users and
//! `filter=lastUpdated gt "…" or lastMembershipUpdated gt "…"` on groups, and deletions from the
//! System Log (`/api/v1/logs` since the same moment: users deleted, deactivated or suspended,
//! members removed, groups deleted), which only incremental runs read. Okta has no nested groups.

use std::collections::{BTreeSet, HashSet};

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup};
use reqwest::Url;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;

use super::feed::{Feed, Gone, entry_time, unless_refused};
use super::person::Person;
use super::since::{rfc3339_millis, since_now, since_seconds};
use crate::auth::{Auth, Grant, Signer, TokenSource, header_value};
use crate::client::{IdpClient, Run, joined};
use crate::error::DriverError;
use crate::keys::{self, KeyError};
use crate::members::{MemberList, fetch_members};
use crate::paging::{Page, Pager, next_link};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::SecretRef;
use idpsync_engine::reconcile::{Listing, ListingScope};

/// Okta's maximum page sizes: users 200, groups 10,000, group members 1,000.
const USERS_PAGE: &str = "200";
const GROUPS_PAGE: &str = "10000";
const MEMBERS_PAGE: &str = "1000";
/// The System Log's maximum page size.
const LOG_PAGE: usize = 1000;
/// How many users one `search=id eq "…" or …` asks for.
const IDS_PER_SEARCH: usize = 20;

/// The System Log events that can end a user's access: deleted, deactivated, suspended, taken
/// out of a group, or the group deleted.
const DELETED: &str = "user.lifecycle.delete.initiated";
const DEACTIVATED: &str = "user.lifecycle.deactivate";
const SUSPENDED: &str = "user.lifecycle.suspend";
const LEFT_GROUP: &str = "group.user_membership.remove";
const GROUP_DELETED: &str = "group.lifecycle.delete";

/// `provider = "okta"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("okta");

/// The scope of the System Log: a service app without its grant runs without the feed.
const LOGS_SCOPE: &str = "okta.logs.read";
/// The scopes an OAuth 2.0 service app asks for, where `scopes` does not say.
const SCOPES: &str = "okta.users.read okta.groups.read okta.logs.read";
/// What the System Log needs, as a warning names it.
const LOGS_PERMISSION: &str =
    "the `okta.logs.read` scope to the service app (or a read-only administrator role to the API token's owner)";

/// The keys of an Okta integration, besides the common ones: an API token, or a service app.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// The org's host (`acme.okta.com`), for the API root; not with `base_url`.
    domain: Option<String>,
    /// An SSWS API token.
    api_token: Option<SecretRef>,
    /// The OAuth 2.0 service app's client id (instead of `api_token`).
    client_id: Option<String>,
    /// Its private key (PEM), for `private_key_jwt`.
    private_key: Option<SecretRef>,
    /// The key's `kid`, if it was registered with one.
    key_id: Option<String>,
    /// The scopes asked for.
    scopes: Option<String>,
}

impl Settings for Keys {
    type Provider = Okta;

    fn check(self, endpoints: Endpoints) -> Result<(Url, Okta), KeyError> {
        let base_url = match (endpoints.base_url, self.domain) {
            (Some(_), Some(_)) => {
                return Err(KeyError::DoesNotApply {
                    key: "domain",
                    given: "base_url",
                });
            }
            (Some(url), None) => url,
            (None, Some(domain)) => {
                Url::parse(&format!("https://{domain}")).map_err(|error| KeyError::invalid("domain", error))?
            }
            (None, None) => {
                return Err(KeyError::Missing {
                    key: "domain",
                    instead: Some("`base_url`"),
                });
            }
        };
        if let Some(token) = self.api_token {
            keys::none_given_with(
                "api_token",
                &[
                    ("client_id", self.client_id.is_some()),
                    ("key_id", self.key_id.is_some()),
                    ("private_key", self.private_key.is_some()),
                    ("scopes", self.scopes.is_some()),
                ],
            )?;
            return Ok((
                base_url,
                Okta {
                    auth: OktaAuth::ApiToken(token),
                },
            ));
        }
        let Some(client_id) = self.client_id else {
            return Err(KeyError::Missing {
                key: "api_token",
                instead: Some("`client_id` and `private_key`"),
            });
        };
        let Some(private_key) = self.private_key else {
            return Err(KeyError::missing("private_key"));
        };
        let auth = OktaAuth::PrivateKeyJwt {
            token_url: endpoints
                .token_url
                .unwrap_or_else(|| joined(&base_url, "/oauth2/v1/token")),
            client_id,
            private_key,
            key_id: self.key_id,
            scopes: self.scopes.unwrap_or_else(|| SCOPES.to_owned()),
        };
        Ok((base_url, Okta { auth }))
    }
}

/// A checked Okta integration.
#[derive(Debug)]
struct Okta {
    auth: OktaAuth,
}

/// How Okta is authenticated.
#[derive(Debug)]
enum OktaAuth {
    /// `Authorization: SSWS <token>`.
    ApiToken(SecretRef),
    /// OAuth 2.0 client credentials with `private_key_jwt`.
    PrivateKeyJwt {
        token_url: Url,
        client_id: String,
        private_key: SecretRef,
        key_id: Option<String>,
        scopes: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaUser {
    id: String,
    status: Option<String>,
    /// When its status last changed: for a user who cannot sign in, when Okta took that away.
    status_changed: Option<String>,
    #[serde(default)]
    profile: OktaProfile,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaProfile {
    login: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct OktaGroup {
    id: String,
    profile: OktaGroupProfile,
}

#[derive(Deserialize)]
struct OktaGroupProfile {
    name: String,
}

#[derive(Deserialize)]
struct OktaMember {
    id: String,
}

/// A System Log event, as far as the feed reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogEvent {
    uuid: String,
    /// When Okta logged the change.
    published: Option<String>,
    event_type: String,
    outcome: LogOutcome,
    #[serde(default)]
    target: Vec<LogTarget>,
}

#[derive(Deserialize)]
struct LogOutcome {
    result: String,
}

#[derive(Deserialize)]
struct LogTarget {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

/// What the System Log says since the cursor: deletions and removals for the feed, and the
/// users deactivated or suspended, whose current state is read again.
#[derive(Default)]
struct LogRead {
    feed: Feed,
    read_again: BTreeSet<String>,
}

impl LogRead {
    /// Takes one event; one of another type than those asked for, or without the target its
    /// type has, is not Okta's shape.
    fn take(&mut self, event: LogEvent) -> Result<(), String> {
        // A failed or denied attempt changed nothing.
        if event.outcome.result != "SUCCESS" {
            return Ok(());
        }
        let target = |kind: &str| {
            event
                .target
                .iter()
                .find(|target| target.kind == kind)
                .map(|target| target.id.clone())
                .ok_or_else(|| {
                    format!(
                        "System Log event {} ({}) has no {kind} target",
                        event.uuid, event.event_type
                    )
                })
        };
        let at = entry_time(event.published.as_deref());
        match event.event_type.as_str() {
            DELETED => self.feed.gone(Gone::User(target("User")?), at),
            DEACTIVATED | SUSPENDED => {
                let user = target("User")?;
                if let Some(at) = at {
                    self.feed.deactivated(user.clone(), at);
                }
                self.read_again.insert(user);
            }
            LEFT_GROUP => self.feed.gone(
                Gone::Member {
                    group: target("UserGroup")?,
                    user: target("User")?,
                },
                at,
            ),
            GROUP_DELETED => self.feed.gone(Gone::Group(target("UserGroup")?), at),
            other => {
                return Err(format!(
                    "System Log event {} is of type {other}, which was not asked for",
                    event.uuid
                ));
            }
        }
        Ok(())
    }
}

/// Reads the System Log from `since` (RFC 3339) to its end. A polling query (no `until`)
/// always offers a next page; the log has been read to its end when a page is not full.
async fn read_log(client: &IdpClient, run: &Run<'_>, since: &str) -> Result<LogRead, DriverError> {
    let filter = [DELETED, DEACTIVATED, SUSPENDED, LEFT_GROUP, GROUP_DELETED]
        .map(|kind| format!("eventType eq \"{kind}\""))
        .join(" or ");
    let limit = LOG_PAGE.to_string();
    let start = client.url(
        "/api/v1/logs",
        &[
            ("since", since),
            ("filter", &filter),
            ("sortOrder", "ASCENDING"),
            ("limit", &limit),
        ],
    );
    let mut read = LogRead::default();
    let mut seen = HashSet::new();
    let mut wrong = None;
    let mut pager = Pager::new("the System Log");
    while let Some(cursor) = pager.cursor() {
        let url = match cursor {
            Some(link) => client.next_url(&link)?,
            None => start.clone(),
        };
        let (items, response): (Vec<LogEvent>, _) = client.get(url, &[], run).await?;
        let next = if items.len() >= LOG_PAGE {
            next_link(&response.headers)
        } else {
            None
        };
        let mut add = |event: LogEvent| {
            if !seen.insert(event.uuid.clone()) {
                return false;
            }
            if let Err(error) = read.take(event) {
                wrong.get_or_insert(error);
            }
            true
        };
        pager.take(Page { items, next }, &mut add, run)?;
        if let Some(message) = wrong.take() {
            return Err(DriverError::InvalidResponse {
                url: start.to_string(),
                message,
            });
        }
    }
    Ok(read)
}

/// Reads again the users the log says were deactivated or suspended and the listing does not
/// hold (Okta's search index may not have caught up with the log): each as it is now, or, if
/// Okta no longer has it, as deleted.
async fn read_users_again(
    client: &IdpClient,
    run: &Run<'_>,
    listing: &mut Listing,
    read: LogRead,
) -> Result<Feed, DriverError> {
    let LogRead { mut feed, read_again } = read;
    let wanted: Vec<String> = read_again.into_iter().filter(|id| !listing.has_user(id)).collect();
    let found = read_users(client, run, listing, &wanted, "the System Log").await?;
    // Deleted since it was deactivated; when, the log said (if the deletion is in it).
    for id in wanted.iter().filter(|id| !found.contains(*id)) {
        feed.gone(Gone::User(id.clone()), None);
    }
    Ok(feed)
}

/// Reads the users of `ids` (named by `source`) and adds them to `listing`, by a search of
/// [`IDS_PER_SEARCH`] ids at a time; returns the ids Okta has.
async fn read_users(
    client: &IdpClient,
    run: &Run<'_>,
    listing: &mut Listing,
    ids: &[String],
    source: &str,
) -> Result<HashSet<String>, DriverError> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(IDS_PER_SEARCH) {
        // Okta ids are letters and digits: nothing read from Okta goes into a search
        // expression unchecked.
        if let Some(id) = chunk.iter().find(|id| !id.chars().all(|c| c.is_ascii_alphanumeric())) {
            return Err(DriverError::InvalidResponse {
                url: client.url("/api/v1/users", &[]).to_string(),
                message: format!("{source} names a user {id:?}, which is not an Okta id"),
            });
        }
        let search = chunk
            .iter()
            .map(|id| format!("id eq \"{id}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        let url = client.url("/api/v1/users", &[("search", &search), ("limit", USERS_PAGE)]);
        each(client, run, "users read again".to_owned(), url, |user: OktaUser| {
            found.insert(user.id.clone());
            add_user(listing, user)
        })
        .await?;
    }
    Ok(found)
}

/// Statuses in which a user can sign in. `STAGED`, `SUSPENDED` and `DEPROVISIONED` cannot.
fn is_active(status: Option<&str>) -> bool {
    matches!(
        status,
        Some("ACTIVE" | "PROVISIONED" | "PASSWORD_EXPIRED" | "LOCKED_OUT" | "RECOVERY")
    )
}

/// Lists every page from `start`, following the `Link` header.
async fn each<T: serde::de::DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    start: Url,
    mut add: impl FnMut(T) -> bool,
) -> Result<(), DriverError> {
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let url = match cursor {
            Some(link) => client.next_url(&link)?,
            None => start.clone(),
        };
        let (items, response) = client.get(url, &[], run).await?;
        let next = next_link(&response.headers);
        pager.take(Page { items, next }, &mut add, run)?;
    }
    Ok(())
}

fn add_user(listing: &mut Listing, user: OktaUser) -> bool {
    let person = Person {
        user_name: user.profile.login.as_deref(),
        email: user.profile.email.as_deref(),
        given_name: user.profile.first_name.as_deref(),
        family_name: user.profile.last_name.as_deref(),
        display_name: user.profile.display_name.as_deref(),
    };
    let active = is_active(user.status.as_deref());
    if !active && let Some(at) = entry_time(user.status_changed.as_deref()) {
        listing.idp_times().user(&user.id, at);
    }
    listing.add_user(person.into_user(user.id, active))
}

#[async_trait::async_trait]
impl Provider for Okta {
    fn auth(&self) -> Result<Auth, DriverError> {
        Ok(match &self.auth {
            OktaAuth::ApiToken(token) => Auth::Static(vec![(
                AUTHORIZATION,
                header_value(&format!("SSWS {}", token.resolve("api_token")?.expose()))?,
            )]),
            OktaAuth::PrivateKeyJwt {
                token_url,
                client_id,
                private_key,
                key_id,
                scopes,
            } => TokenSource::auth(
                token_url.clone(),
                Grant::PrivateKeyJwt {
                    client_id: client_id.clone(),
                    signer: Signer::new(&private_key.resolve("private_key")?, key_id.clone())?,
                    scope: scopes.clone(),
                    optional_scope: Some(LOGS_SCOPE),
                },
            ),
        })
    }

    fn incremental(&self) -> bool {
        true
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let cursor = since_now();
        // The feed is read first, so that the listing is the newer of the two.
        let log = match since {
            Some(since) => {
                let since = rfc3339_millis(since_seconds(since)?);
                unless_refused(run, "the System Log", LOGS_PERMISSION, read_log(client, run, &since)).await?
            }
            None => None,
        };
        let (mut listing, user_queries, group_query) = match since {
            None => (
                run.listing(ListingScope::Complete),
                // The plain list leaves out deprovisioned users; they are listed apart so that
                // a deactivation reads as one, not as a deletion.
                vec![
                    vec![("limit", USERS_PAGE.to_owned())],
                    vec![
                        ("filter", "status eq \"DEPROVISIONED\"".to_owned()),
                        ("limit", USERS_PAGE.to_owned()),
                    ],
                ],
                vec![("limit", GROUPS_PAGE.to_owned())],
            ),
            Some(cursor) => {
                let since = rfc3339_millis(since_seconds(cursor)?);
                (
                    run.listing(ListingScope::Incremental),
                    vec![vec![
                        ("search", format!("lastUpdated gt \"{since}\"")),
                        ("limit", USERS_PAGE.to_owned()),
                    ]],
                    vec![
                        (
                            "filter",
                            format!("lastUpdated gt \"{since}\" or lastMembershipUpdated gt \"{since}\""),
                        ),
                        ("limit", GROUPS_PAGE.to_owned()),
                    ],
                )
            }
        };
        for query in user_queries {
            let query: Vec<(&str, &str)> = query.iter().map(|(key, value)| (*key, value.as_str())).collect();
            let url = client.url("/api/v1/users", &query);
            each(client, run, "users".to_owned(), url, |user: OktaUser| {
                add_user(&mut listing, user)
            })
            .await?;
        }
        let query: Vec<(&str, &str)> = group_query.iter().map(|(key, value)| (*key, value.as_str())).collect();
        let mut groups = Vec::new();
        each(
            client,
            run,
            "groups".to_owned(),
            client.url("/api/v1/groups", &query),
            |group: OktaGroup| {
                let name = group.profile.name;
                let new = listing.add_group(SnapshotGroup {
                    external_id: group.id.clone(),
                    display_name: name.clone(),
                });
                if new {
                    groups.push((group.id, name));
                }
                new
            },
        )
        .await?;
        let named = groups.iter().map(|(id, name)| (id.as_str(), name.as_str()));
        fetch_members(&mut listing, &run.selection, named, |group| async move {
            let url = client.url(&format!("/api/v1/groups/{group}/users"), &[("limit", MEMBERS_PAGE)]);
            let mut members = MemberList::default();
            each(
                client,
                run,
                format!("members of group {group}"),
                url,
                |member: OktaMember| members.add(ExternalMember::User(member.id)),
            )
            .await?;
            Ok(members.into_members())
        })
        .await?;
        if let Some(log) = log {
            read_users_again(client, run, &mut listing, log)
                .await?
                .apply(&mut listing);
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
        read_users(client, run, listing, ids, "a group's member list").await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, endpoints: Endpoints) -> Result<(Url, Okta), KeyError> {
        keys::parse::<Keys>(toml::from_str(text).unwrap())?.check(endpoints)
    }

    #[test]
    fn an_api_token_or_a_service_app_not_both() {
        let (base_url, okta) = check(
            "domain = \"acme.okta.com\"\napi_token = \"00abc\"",
            Endpoints::default(),
        )
        .unwrap();
        assert_eq!(base_url.as_str(), "https://acme.okta.com/");
        assert!(matches!(okta.auth, OktaAuth::ApiToken(_)));
        let (_, okta) = check(
            "domain = \"acme.okta.com\"\nclient_id = \"app\"\nprivate_key = \"pem\"",
            Endpoints::default(),
        )
        .unwrap();
        let OktaAuth::PrivateKeyJwt { token_url, scopes, .. } = okta.auth else {
            panic!("a service app expected");
        };
        assert_eq!(token_url.as_str(), "https://acme.okta.com/oauth2/v1/token");
        assert_eq!(scopes, SCOPES);
        assert_eq!(
            check(
                "domain = \"a.okta.com\"\napi_token = \"t\"\nclient_id = \"app\"",
                Endpoints::default()
            )
            .unwrap_err(),
            KeyError::DoesNotApply {
                key: "client_id",
                given: "api_token"
            }
        );
        assert_eq!(
            check("domain = \"a.okta.com\"\nclient_id = \"app\"", Endpoints::default()).unwrap_err(),
            KeyError::missing("private_key")
        );
        let given = Endpoints {
            base_url: Some(Url::parse("https://a.okta.com").unwrap()),
            token_url: None,
        };
        assert_eq!(
            check("domain = \"a.okta.com\"\napi_token = \"t\"", given).unwrap_err(),
            KeyError::DoesNotApply {
                key: "domain",
                given: "base_url"
            }
        );
    }
}
