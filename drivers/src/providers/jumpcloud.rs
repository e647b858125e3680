//! JumpCloud: `x-api-key` (and `x-org-id` for multi-tenant admins); v1 `/systemusers`
//! (`{totalCount, results}`) and v2 `/v2/usergroups` with `/members` (bare arrays), all paged by
//! `limit` + `skip`, users sorted by `_id` and groups by `id` so that a change during the listing
//! moves nothing across pages. No delta: every run is a full listing. Each page after the first re-reads
//! the last two items of the one before, so that an object deleted during the listing cannot
//! make the next one be skipped (a larger shift fails the listing; see [`Pager::take_at`]).

use std::collections::HashSet;

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup};
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::person::Person;
use crate::auth::{Auth, header_value};
use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::keys::KeyError;
use crate::members::{MemberList, fetch_members};
use crate::paging::{Pager, offset_of};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::SecretRef;
use idpsync_engine::reconcile::ListingScope;

/// JumpCloud's maximum page size.
const PAGE_SIZE: u64 = 100;

/// `provider = "jumpcloud"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("jumpcloud");

/// JumpCloud's API root, where `base_url` does not say.
const API_ROOT: &str = "https://console.jumpcloud.com/api";

/// The keys of a JumpCloud integration, besides the common ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// The admin API key.
    api_key: SecretRef,
    /// For multi-tenant admins: the organization.
    org_id: Option<String>,
}

impl Settings for Keys {
    type Provider = JumpCloud;

    fn check(self, endpoints: Endpoints) -> Result<(Url, JumpCloud), KeyError> {
        let base_url = match endpoints.base_url {
            Some(url) => url,
            None => Url::parse(API_ROOT).expect("JumpCloud's API root is a URL"),
        };
        let jumpcloud = JumpCloud {
            api_key: self.api_key,
            org_id: self.org_id,
        };
        Ok((base_url, jumpcloud))
    }
}

/// A checked JumpCloud integration: an API key.
#[derive(Debug)]
struct JumpCloud {
    api_key: SecretRef,
    org_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemUsers {
    total_count: Option<u64>,
    #[serde(default)]
    results: Vec<SystemUser>,
}

#[derive(Deserialize)]
struct SystemUser {
    #[serde(rename = "_id")]
    id: String,
    username: Option<String>,
    email: Option<String>,
    firstname: Option<String>,
    lastname: Option<String>,
    displayname: Option<String>,
    activated: Option<bool>,
    suspended: Option<bool>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct UserGroup {
    id: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct GraphConnection {
    to: GraphObject,
}

#[derive(Deserialize)]
struct GraphObject {
    id: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Lists `path` by `limit` + `skip`, in the order of the `sort` field where the endpoint takes
/// one (without it the order is unspecified, and a change during the listing could move an
/// object past the page boundary); `split` turns a body into items and, where the body has
/// one, a total.
async fn each<P: DeserializeOwned, T>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    path: &str,
    sort: Option<&str>,
    split: impl Fn(P) -> (Vec<T>, Option<u64>),
    mut add: impl FnMut(T) -> bool,
) -> Result<(), DriverError> {
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let offset = offset_of(cursor.as_deref());
        let (limit, skip) = (PAGE_SIZE.to_string(), offset.to_string());
        let mut query = vec![("limit", limit.as_str()), ("skip", skip.as_str())];
        query.extend(sort.map(|field| ("sort", field)));
        let url = client.url(path, &query);
        let (body, _) = client.get(url, &[], run).await?;
        let (items, total) = split(body);
        pager.take_at(offset, items, PAGE_SIZE, total, &mut add, run)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Provider for JumpCloud {
    fn auth(&self) -> Result<Auth, DriverError> {
        let mut headers = vec![(
            HeaderName::from_static("x-api-key"),
            header_value(self.api_key.resolve("api_key")?.expose())?,
        )];
        if let Some(org_id) = &self.org_id {
            headers.push((HeaderName::from_static("x-org-id"), header_value(org_id)?));
        }
        headers.push((reqwest::header::ACCEPT, HeaderValue::from_static("application/json")));
        Ok(Auth::Static(headers))
    }

    fn incremental(&self) -> bool {
        false
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, _since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let mut listing = run.listing(ListingScope::Complete);
        each(
            client,
            run,
            "users".to_owned(),
            "/systemusers",
            Some("_id"),
            |page: SystemUsers| (page.results, page.total_count),
            |user| {
                let person = Person {
                    user_name: user.username.as_deref(),
                    email: user.email.as_deref(),
                    given_name: user.firstname.as_deref(),
                    family_name: user.lastname.as_deref(),
                    display_name: user.displayname.as_deref(),
                };
                let active = user.activated.unwrap_or(true)
                    && !user.suspended.unwrap_or(false)
                    && user.state.as_deref().is_none_or(|state| state == "ACTIVATED");
                listing.add_user(person.into_user(user.id.clone(), active))
            },
        )
        .await?;
        let mut groups = Vec::new();
        each(
            client,
            run,
            "user groups".to_owned(),
            "/v2/usergroups",
            Some("id"),
            |page: Vec<UserGroup>| (page, None),
            |group| {
                let name = group.name.unwrap_or_else(|| group.id.clone());
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
            let mut members = MemberList::default();
            // Members of other kinds are not synced, but are told apart from repeats all the same.
            let mut others = HashSet::new();
            each(
                client,
                run,
                format!("members of user group {group}"),
                &format!("/v2/usergroups/{group}/members"),
                None,
                |page: Vec<GraphConnection>| (page, None),
                |edge| match edge.to.kind.as_deref() {
                    Some("user") | None => members.add(ExternalMember::User(edge.to.id)),
                    Some("user_group") => members.add(ExternalMember::Group(edge.to.id)),
                    Some(kind) => others.insert((kind.to_owned(), edge.to.id)),
                },
            )
            .await?;
            Ok(members.into_members())
        })
        .await?;
        Ok(Fetched { listing, cursor: None })
    }
}
