//! Keycloak Admin REST API: client credentials of a service-account client; bare arrays paged by
//! `first` + `max`; top-level groups, their subgroups (`/children`, recursively, cycle-safe; or,
//! on Keycloak 22 and older, which have no `/children`, the tree `GET /groups` brings inline) as
//! nested groups, and the direct members of the groups the run selects. No delta: every run is a full listing. Each
//! page after the first re-reads the last two items of the one before, so that an object
//! deleted during the listing cannot make the next one be skipped (a larger shift fails the
//! listing; see [`Pager::take_at`]).

use std::collections::{HashMap, HashSet};

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::person::Person;
use crate::auth::{Auth, Grant, TokenSource};
use crate::client::{IdpClient, Run, joined};
use crate::error::DriverError;
use crate::keys::KeyError;
use crate::members::{MemberList, fetch_members};
use crate::paging::{Pager, offset_of};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::SecretRef;
use idpsync_engine::reconcile::ListingScope;

/// Keycloak sets no maximum; this keeps each answer to a few megabytes.
const PAGE_SIZE: u64 = 1000;

/// `provider = "keycloak"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("keycloak");

/// The keys of a Keycloak integration, besides the common ones; `base_url` (the server's root)
/// is required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// The realm synced.
    realm: String,
    /// A confidential client with a service account.
    client_id: String,
    /// Its secret.
    client_secret: SecretRef,
}

impl Settings for Keys {
    type Provider = Keycloak;

    fn check(self, endpoints: Endpoints) -> Result<(Url, Keycloak), KeyError> {
        let base_url = endpoints.base_url.ok_or(KeyError::missing("base_url"))?;
        let token_url = endpoints.token_url.unwrap_or_else(|| {
            joined(
                &base_url,
                &format!("/realms/{}/protocol/openid-connect/token", self.realm),
            )
        });
        let keycloak = Keycloak {
            token_url,
            realm: self.realm,
            client_id: self.client_id,
            client_secret: self.client_secret,
        };
        Ok((base_url, keycloak))
    }
}

/// A checked Keycloak integration: client credentials of a service-account client.
#[derive(Debug)]
struct Keycloak {
    token_url: Url,
    realm: String,
    client_id: String,
    client_secret: SecretRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeycloakUser {
    id: String,
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeycloakGroup {
    id: String,
    name: Option<String>,
    path: Option<String>,
    /// How many subgroups it has (Keycloak 23 on; older versions send none).
    sub_group_count: Option<i64>,
    /// Its subgroups, inline: the whole tree in Keycloak 22 and older, not filled from 23 on
    /// (without `search`); read only when the count is missing, as `KeycloakGroup`s.
    #[serde(default)]
    sub_groups: Vec<Value>,
}

/// Lists `path` by `first` + `max` (bare arrays; a short page is the last).
async fn each<T: DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    path: &str,
    mut add: impl FnMut(T) -> bool,
) -> Result<(), DriverError> {
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let offset = offset_of(cursor.as_deref());
        let (first, max) = (offset.to_string(), PAGE_SIZE.to_string());
        let url = client.url(
            path,
            &[("briefRepresentation", "true"), ("first", &first), ("max", &max)],
        );
        let (items, _): (Vec<T>, _) = client.get(url, &[], run).await?;
        pager.take_at(offset, items, PAGE_SIZE, None, &mut add, run)?;
    }
    Ok(())
}

/// Subgroups as Keycloak 22 and older bring them inline.
fn inline_groups(client: &IdpClient, realm: &str, inline: Vec<Value>) -> Result<Vec<KeycloakGroup>, DriverError> {
    serde_json::from_value(Value::Array(inline)).map_err(|error| DriverError::InvalidResponse {
        url: client.url(&format!("{realm}/groups"), &[]).to_string(),
        message: format!("an inline subgroup: {error}"),
    })
}

/// A group's direct subgroups, from `/groups/{id}/children` (Keycloak 23 on).
async fn children(
    client: &IdpClient,
    run: &Run<'_>,
    realm: &str,
    group: &str,
) -> Result<Vec<KeycloakGroup>, DriverError> {
    let mut children: Vec<KeycloakGroup> = Vec::new();
    each(
        client,
        run,
        format!("subgroups of group {group}"),
        &format!("{realm}/groups/{group}/children"),
        |child: KeycloakGroup| {
            let new = !children.iter().any(|known| known.id == child.id);
            if new {
                children.push(child);
            }
            new
        },
    )
    .await?;
    Ok(children)
}

#[async_trait::async_trait]
impl Provider for Keycloak {
    fn auth(&self) -> Result<Auth, DriverError> {
        let grant = Grant::ClientSecretPost {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.resolve("client_secret")?,
            extra: Vec::new(),
        };
        Ok(TokenSource::auth(self.token_url.clone(), grant))
    }

    fn incremental(&self) -> bool {
        false
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, _since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let realm = format!("/admin/realms/{}", self.realm);
        let mut listing = run.listing(ListingScope::Complete);
        each(
            client,
            run,
            "users".to_owned(),
            &format!("{realm}/users"),
            |user: KeycloakUser| {
                let person = Person {
                    user_name: user.username.as_deref(),
                    email: user.email.as_deref(),
                    given_name: user.first_name.as_deref(),
                    family_name: user.last_name.as_deref(),
                    display_name: None,
                };
                listing.add_user(person.into_user(user.id.clone(), user.enabled.unwrap_or(false)))
            },
        )
        .await?;
        // Walk the group tree breadth-first: (group, its parent).
        let mut queue: Vec<(KeycloakGroup, Option<String>)> = Vec::new();
        let mut top_level = HashSet::new();
        each(
            client,
            run,
            "groups".to_owned(),
            &format!("{realm}/groups"),
            |group: KeycloakGroup| {
                let new = top_level.insert(group.id.clone());
                if new {
                    queue.push((group, None));
                }
                new
            },
        )
        .await?;
        // The tree first (every group, and each one's subgroups), then the members of the
        // groups the run selects.
        let mut visited = HashSet::new();
        let mut named: Vec<(String, String)> = Vec::new();
        let mut children_of: HashMap<String, Vec<String>> = HashMap::new();
        // Keycloak 22 and older have no `/children` (a 404) and bring the tree inline instead.
        let mut inline_tree = false;
        while let Some((mut group, parent)) = queue.pop() {
            if let Some(parent) = parent {
                children_of.entry(parent).or_default().push(group.id.clone());
            }
            if !visited.insert(group.id.clone()) {
                continue;
            }
            let display_name = group.name.or(group.path).unwrap_or_else(|| group.id.clone());
            listing.add_group(SnapshotGroup {
                external_id: group.id.clone(),
                display_name: display_name.clone(),
            });
            named.push((group.id.clone(), display_name));
            let inline = std::mem::take(&mut group.sub_groups);
            let children = match group.sub_group_count {
                Some(0) => Vec::new(),
                Some(_) => children(client, run, &realm, &group.id).await?,
                // Without a count, this is Keycloak 22 or older, whose tree is inline.
                None if inline_tree || !inline.is_empty() => inline_groups(client, &realm, inline)?,
                None => match children(client, run, &realm, &group.id).await {
                    Ok(children) => children,
                    Err(DriverError::Status { status: 404, .. }) => {
                        inline_tree = true;
                        inline_groups(client, &realm, inline)?
                    }
                    Err(error) => return Err(error),
                },
            };
            queue.extend(children.into_iter().map(|child| (child, Some(group.id.clone()))));
        }
        let groups = named.iter().map(|(id, name)| (id.as_str(), name.as_str()));
        let (realm, children_of) = (&realm, &children_of);
        fetch_members(&mut listing, &run.selection, groups, |group| async move {
            // A group's members are its users and its subgroups.
            let mut members = MemberList::default();
            for child in children_of.get(&group).into_iter().flatten() {
                members.add(ExternalMember::Group(child.clone()));
            }
            each(
                client,
                run,
                format!("members of group {group}"),
                &format!("{realm}/groups/{group}/members"),
                |user: KeycloakUser| members.add(ExternalMember::User(user.id)),
            )
            .await?;
            Ok(members.into_members())
        })
        .await?;
        Ok(Fetched { listing, cursor: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17 (found by the contract mocks): Keycloak's schema lets `subGroups` hold groups
    /// without an `id`, which failed the whole group listing once subgroups were read. They
    /// are read only without a `subGroupCount` (Keycloak 22 and older), and parsed then.
    #[test]
    fn inline_subgroups_are_parsed_only_when_read() {
        let group: KeycloakGroup =
            serde_json::from_str(r#"{"id": "g1", "subGroupCount": 1, "subGroups": [{"name": "x"}]}"#).unwrap();
        assert_eq!(group.sub_group_count, Some(1));
        let client = IdpClient {
            http: crate::http::Http::new(std::time::Duration::from_secs(1), Default::default(), 1),
            auth: Auth::Static(Vec::new()),
            base: Url::parse("https://sso.example.com").unwrap(),
        };
        let Err(error) = inline_groups(&client, "/admin/realms/acme", group.sub_groups) else {
            panic!("a subgroup without an id is refused once read");
        };
        assert!(error.to_string().contains("missing field `id`"), "{error}");
        let tree = vec![serde_json::json!({"id": "g2", "subGroups": [{"id": "g3"}]})];
        let groups = inline_groups(&client, "/admin/realms/acme", tree).unwrap();
        assert_eq!(groups[0].sub_groups.len(), 1);
    }

    #[test]
    fn the_token_endpoint_is_the_realm_s() {
        let keys: Keys =
            crate::keys::parse(toml::from_str("realm = \"acme\"\nclient_id = \"c\"\nclient_secret = \"s\"").unwrap())
                .unwrap();
        let endpoints = Endpoints {
            base_url: Some(Url::parse("https://sso.example.com").unwrap()),
            token_url: None,
        };
        let (_, keycloak) = keys.check(endpoints).unwrap();
        assert_eq!(
            keycloak.token_url.as_str(),
            "https://sso.example.com/realms/acme/protocol/openid-connect/token"
        );
        let keys: Keys =
            crate::keys::parse(toml::from_str("realm = \"acme\"\nclient_id = \"c\"\nclient_secret = \"s\"").unwrap())
                .unwrap();
        assert_eq!(
            keys.check(Endpoints::default()).unwrap_err(),
            KeyError::missing("base_url")
        );
    }
}
