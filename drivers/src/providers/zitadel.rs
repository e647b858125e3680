//! Zitadel v2: a personal access token, or a service user's token (client credentials with
//! HTTP Basic, or a JWT profile key); offset paging in the request body; users from
//! `POST /v2/users`; groups from project-role authorizations (the v2 AuthorizationService's
//! `ListAuthorizations`, Connect protocol, one group per project and role; an instance without
//! it, before v4, answers 404 and the deprecated `POST /v2beta/authorizations/search` is read
//! instead) or from GroupService `ListGroups` (Connect protocol), read without members: the
//! GroupService this driver is checked against has no membership RPC. 64-bit numbers travel as
//! strings. No delta and no deletion feed: every run is a full listing, and a deleted user is an
//! absence.
//! Each page after the first re-reads the last two items of the one before, so that an object
//! deleted during the listing cannot make the next one be skipped (a larger shift fails the
//! listing; see [`Pager::take_at`]).

use std::collections::HashSet;

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup};
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::person::Person;
use crate::auth::{AssertionClaims, Auth, Grant, ServiceAccountKey, Signer, TokenSource};
use crate::client::{IdpClient, Run, joined};
use crate::error::DriverError;
use crate::keys::{self, KeyError};
use crate::paging::{Pager, offset_of};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::{KeyFile, Secret, SecretRef};
use idpsync_engine::reconcile::{Listing, ListingScope};

/// Zitadel's default maximum list limit.
const PAGE_SIZE: u64 = 1000;
const SCOPE: &str = "openid urn:zitadel:iam:org:project:id:zitadel:aud";

/// `provider = "zitadel"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("zitadel");

/// The keys of a Zitadel integration, besides the common ones; `base_url` (the instance's root)
/// is required, and one way to authenticate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// A personal access token.
    pat: Option<SecretRef>,
    /// A service user's JSON key file, for the JWT profile.
    key_file: Option<KeyFile<ZitadelKeyFile>>,
    /// A service user's client id, for client credentials.
    client_id: Option<String>,
    /// Its secret.
    client_secret: Option<SecretRef>,
    /// What becomes groups.
    #[serde(default)]
    groups: ZitadelGroups,
}

/// The fields of Zitadel's key file that are used.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZitadelKeyFile {
    user_id: String,
    key_id: Option<String>,
    key: Secret,
}

/// What Zitadel objects become groups.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ZitadelGroups {
    /// Project-role authorizations: one group per project and role key.
    #[default]
    Authorizations,
    /// Zitadel groups (GroupService `ListGroups`; read without members, so they arrive empty).
    Groups,
}

impl Settings for Keys {
    type Provider = Zitadel;

    fn check(self, endpoints: Endpoints) -> Result<(Url, Zitadel), KeyError> {
        let base_url = endpoints.base_url.ok_or(KeyError::missing("base_url"))?;
        let token_url = endpoints
            .token_url
            .unwrap_or_else(|| joined(&base_url, "/oauth/v2/token"));
        let auth = if let Some(pat) = self.pat {
            keys::none_given_with(
                "pat",
                &[
                    ("client_id", self.client_id.is_some()),
                    ("client_secret", self.client_secret.is_some()),
                    ("key_file", self.key_file.is_some()),
                ],
            )?;
            ZitadelAuth::Pat(pat)
        } else if let Some(key_file) = self.key_file {
            keys::none_given_with(
                "key_file",
                &[
                    ("client_id", self.client_id.is_some()),
                    ("client_secret", self.client_secret.is_some()),
                ],
            )?;
            ZitadelAuth::JwtProfile {
                token_url,
                key_file,
                // Zitadel expects its issuer (the instance's origin) as the audience.
                audience: base_url.origin().ascii_serialization(),
            }
        } else if let Some(client_id) = self.client_id {
            let Some(client_secret) = self.client_secret else {
                return Err(KeyError::missing("client_secret"));
            };
            ZitadelAuth::ClientSecret {
                token_url,
                client_id,
                client_secret,
            }
        } else {
            return Err(KeyError::Missing {
                key: "pat",
                instead: Some("`key_file`, or `client_id` and `client_secret`"),
            });
        };
        let zitadel = Zitadel {
            auth,
            groups: self.groups,
        };
        Ok((base_url, zitadel))
    }
}

/// A checked Zitadel integration.
#[derive(Debug)]
struct Zitadel {
    auth: ZitadelAuth,
    groups: ZitadelGroups,
}

/// How Zitadel is authenticated.
#[derive(Debug)]
enum ZitadelAuth {
    /// A personal access token.
    Pat(SecretRef),
    /// Client credentials (HTTP Basic).
    ClientSecret {
        token_url: Url,
        client_id: String,
        client_secret: SecretRef,
    },
    /// JWT profile: a key file of a service user.
    JwtProfile {
        token_url: Url,
        key_file: KeyFile<ZitadelKeyFile>,
        audience: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZitadelUser {
    user_id: String,
    username: Option<String>,
    state: Option<String>,
    human: Option<Human>,
}

#[derive(Deserialize)]
struct Human {
    profile: Option<HumanProfile>,
    email: Option<HumanEmail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HumanProfile {
    given_name: Option<String>,
    family_name: Option<String>,
    display_name: Option<String>,
}

#[derive(Deserialize)]
struct HumanEmail {
    email: Option<String>,
}

/// An authorization as v2 (`project` an object, roles objects with a `key`) or v2beta
/// (`projectId`, `projectName`, roles as keys) answers it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authorization {
    id: Option<String>,
    project: Option<AuthorizedProject>,
    project_id: Option<String>,
    project_name: Option<String>,
    state: Option<String>,
    user: Option<AuthorizedUser>,
    #[serde(default)]
    roles: Vec<Value>,
}

#[derive(Deserialize)]
struct AuthorizedProject {
    id: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct AuthorizedUser {
    id: String,
}

#[derive(Deserialize)]
struct ZitadelGroup {
    id: String,
    name: Option<String>,
}

/// A 64-bit number as Zitadel sends it: a string, or sometimes a number.
fn number(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::String(text) => text.parse().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    }
}

/// Lists by offset in the request body. `request` builds the body from (offset, limit);
/// `split` takes the items and the total out of the answer.
async fn each<T: DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    path: &str,
    request: impl Fn(String, u64) -> Value,
    items_key: &str,
    mut add: impl FnMut(T) -> bool,
) -> Result<(), DriverError> {
    let connect = [(
        HeaderName::from_static("connect-protocol-version"),
        HeaderValue::from_static("1"),
    )];
    let headers: &[(HeaderName, HeaderValue)] = if path.starts_with("/zitadel.") { &connect } else { &[] };
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let offset = offset_of(cursor.as_deref());
        let mut body: Value = client
            .post(
                client.url(path, &[]),
                request(offset.to_string(), PAGE_SIZE),
                headers,
                run,
            )
            .await?;
        let total = number(body.pointer("/details/totalResult")).or(number(body.pointer("/pagination/totalResult")));
        let page_size = number(body.pointer("/pagination/appliedLimit"))
            .filter(|applied| *applied > 0)
            .unwrap_or(PAGE_SIZE);
        let items: Vec<T> = match body.get_mut(items_key).map(Value::take) {
            None | Some(Value::Null) => Vec::new(),
            Some(items) => serde_json::from_value(items).map_err(|error| DriverError::InvalidResponse {
                url: client.url(path, &[]).to_string(),
                message: format!("{items_key}: {error}"),
            })?,
        };
        pager.take_at(offset, items, page_size, total, &mut add, run)?;
    }
    Ok(())
}

fn pagination(offset: String, limit: u64) -> Value {
    json!({ "pagination": { "offset": offset, "limit": limit, "asc": true } })
}

#[async_trait::async_trait]
impl Provider for Zitadel {
    fn auth(&self) -> Result<Auth, DriverError> {
        Ok(match &self.auth {
            ZitadelAuth::Pat(token) => Auth::bearer(&token.resolve("pat")?)?,
            ZitadelAuth::ClientSecret {
                token_url,
                client_id,
                client_secret,
            } => TokenSource::auth(
                token_url.clone(),
                Grant::ClientSecretBasic {
                    client_id: client_id.clone(),
                    client_secret: client_secret.resolve("client_secret")?,
                    scope: SCOPE.to_owned(),
                },
            ),
            ZitadelAuth::JwtProfile {
                token_url,
                key_file,
                audience,
            } => {
                let file = key_file.resolve("key_file")?;
                let key = ServiceAccountKey {
                    issuer: file.user_id,
                    key_id: file.key_id,
                    private_key: file.key,
                };
                TokenSource::auth(
                    token_url.clone(),
                    Grant::JwtBearer {
                        signer: Signer::from_service_account(&key)?,
                        claims: AssertionClaims {
                            issuer: key.issuer.clone(),
                            subject: key.issuer.clone(),
                            audience: audience.clone(),
                            scope: SCOPE.to_owned(),
                            scope_in_assertion: false,
                        },
                    },
                )
            }
        })
    }

    fn incremental(&self) -> bool {
        false
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, _since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let mut listing = run.listing(ListingScope::Complete);
        let users_query =
            |offset: String, limit: u64| json!({ "query": { "offset": offset, "limit": limit, "asc": true } });
        let mut machines = HashSet::new();
        each(
            client,
            run,
            "users".to_owned(),
            "/v2/users",
            users_query,
            "result",
            |user: ZitadelUser| {
                // Machine users are API clients, not people.
                let Some(human) = user.human else {
                    return machines.insert(user.user_id);
                };
                let profile = human.profile.as_ref();
                let person = Person {
                    user_name: user.username.as_deref(),
                    email: human.email.as_ref().and_then(|email| email.email.as_deref()),
                    given_name: profile.and_then(|profile| profile.given_name.as_deref()),
                    family_name: profile.and_then(|profile| profile.family_name.as_deref()),
                    display_name: profile.and_then(|profile| profile.display_name.as_deref()),
                };
                let active = matches!(user.state.as_deref(), Some("USER_STATE_ACTIVE" | "USER_STATE_INITIAL"));
                listing.add_user(person.into_user(user.user_id, active))
            },
        )
        .await?;
        if !machines.is_empty() {
            tracing::debug!(machines = machines.len(), "machine users are not synced");
        }
        match self.groups {
            ZitadelGroups::Authorizations => {
                let mut grants = HashSet::new();
                match read_authorizations(client, run, &mut listing, &mut grants, AUTHORIZATIONS_V2).await {
                    // An instance older than the v2 AuthorizationService (Zitadel before v4)
                    // does not know the route; nothing was read from it.
                    Err(DriverError::Status { status: 404 | 501, .. }) if grants.is_empty() => {
                        run.warn(format!(
                            "this Zitadel has no {AUTHORIZATIONS_V2}; reading the deprecated {AUTHORIZATIONS_V2BETA} instead"
                        ));
                        read_authorizations(client, run, &mut listing, &mut grants, AUTHORIZATIONS_V2BETA).await?;
                    }
                    other => other?,
                }
            }
            ZitadelGroups::Groups => {
                each(
                    client,
                    run,
                    "groups".to_owned(),
                    "/zitadel.group.v2.GroupService/ListGroups",
                    pagination,
                    "groups",
                    |group: ZitadelGroup| {
                        listing.add_group(SnapshotGroup {
                            display_name: group.name.unwrap_or_else(|| group.id.clone()),
                            external_id: group.id,
                        })
                    },
                )
                .await?
            }
        }
        Ok(Fetched { listing, cursor: None })
    }
}

/// The v2 AuthorizationService's listing (Connect only).
const AUTHORIZATIONS_V2: &str = "/zitadel.authorization.v2.AuthorizationService/ListAuthorizations";
/// The deprecated v2beta listing, for instances older than the v2 AuthorizationService.
const AUTHORIZATIONS_V2BETA: &str = "/v2beta/authorizations/search";

/// Reads every authorization from `path` into `listing`; `grants` collects their ids.
async fn read_authorizations(
    client: &IdpClient,
    run: &Run<'_>,
    listing: &mut Listing,
    grants: &mut HashSet<String>,
    path: &str,
) -> Result<(), DriverError> {
    each(
        client,
        run,
        "authorizations".to_owned(),
        path,
        pagination,
        "authorizations",
        |grant: Authorization| {
            // An authorization is new by its id; the edges it adds may repeat others'.
            let id = grant.id.clone();
            let added = add_authorization(listing, grant);
            id.map_or(added, |id| grants.insert(id))
        },
    )
    .await
}

/// One authorization: the user joins one group per role, named `<project>:<role>`.
fn add_authorization(listing: &mut Listing, grant: Authorization) -> bool {
    if grant.state.as_deref() == Some("STATE_INACTIVE") {
        return true;
    }
    let (nested_id, nested_name) = grant.project.map_or((None, None), |project| (project.id, project.name));
    let (Some(project), Some(user)) = (nested_id.or(grant.project_id), grant.user) else {
        return true;
    };
    let project_name = nested_name
        .or(grant.project_name)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| project.clone());
    let mut new = false;
    for role in &grant.roles {
        // Roles are keys (strings) in v2beta, objects with a `key` in v2.
        let key = match role {
            Value::String(key) => key.as_str(),
            other => match other.get("key").and_then(Value::as_str) {
                Some(key) => key,
                None => continue,
            },
        };
        let external_id = format!("{project}:{key}");
        listing.add_group(SnapshotGroup {
            external_id: external_id.clone(),
            display_name: format!("{project_name}:{key}"),
        });
        new |= listing.add_member(&external_id, ExternalMember::User(user.id.clone()));
    }
    new
}
