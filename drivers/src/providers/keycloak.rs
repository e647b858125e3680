//! Keycloak Admin REST API: client credentials of a service-account client; bare arrays paged by
//! `first` + `max`; top-level groups, their subgroups (`/children`, recursively, cycle-safe) as
//! nested groups, and each group's direct members. No delta: every run is a full listing. Each
//! page after the first re-reads the last two items of the one before, so that an object
//! deleted during the listing cannot make the next one be skipped (a larger shift fails the
//! listing; see [`Pager::take_at`]).

use std::collections::HashSet;

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::person::Person;
use crate::auth::{Auth, Grant, TokenSource};
use crate::client::{IdpClient, Run, joined};
use crate::error::DriverError;
use crate::keys::KeyError;
use crate::paging::{Pager, offset_of};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::Secret;
use idpsync_engine::reconcile::{Listing, ListingScope};

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
    client_secret: Secret,
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
    client_secret: Secret,
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
    sub_group_count: Option<i64>,
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

#[async_trait::async_trait]
impl Provider for Keycloak {
    fn auth(&self) -> Result<Auth, DriverError> {
        let grant = Grant::ClientSecretPost {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            extra: Vec::new(),
        };
        Ok(TokenSource::auth(self.token_url.clone(), grant))
    }

    fn incremental(&self) -> bool {
        false
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, _since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let realm = format!("/admin/realms/{}", self.realm);
        let mut listing = Listing::new(ListingScope::Complete);
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
        let mut visited = HashSet::new();
        while let Some((group, parent)) = queue.pop() {
            if let Some(parent) = &parent {
                listing.add_member(parent, ExternalMember::Group(group.id.clone()));
            }
            if !visited.insert(group.id.clone()) {
                continue;
            }
            let display_name = group.name.or(group.path).unwrap_or_else(|| group.id.clone());
            listing.add_group(SnapshotGroup {
                external_id: group.id.clone(),
                display_name,
            });
            each(
                client,
                run,
                format!("members of group {}", group.id),
                &format!("{realm}/groups/{}/members", group.id),
                |user: KeycloakUser| listing.add_member(&group.id, ExternalMember::User(user.id)),
            )
            .await?;
            if group.sub_group_count.is_none_or(|count| count > 0) {
                let mut children = Vec::new();
                each(
                    client,
                    run,
                    format!("subgroups of group {}", group.id),
                    &format!("{realm}/groups/{}/children", group.id),
                    |child: KeycloakGroup| {
                        let new = !children.iter().any(|known: &KeycloakGroup| known.id == child.id);
                        if new {
                            children.push(child);
                        }
                        new
                    },
                )
                .await?;
                queue.extend(children.into_iter().map(|child| (child, Some(group.id.clone()))));
            }
        }
        Ok(Fetched { listing, cursor: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
