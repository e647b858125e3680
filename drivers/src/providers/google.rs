//! Google Workspace, Admin SDK Directory API v1: a service account's JWT-bearer grant acting
//! for an admin (domain-wide delegation); `maxResults` + `pageToken` paging; groups in groups.
//! Google offers no delta: every run is a full listing.

use std::collections::HashSet;

use idpsync_engine::reconcile::{ExternalMember, SnapshotGroup};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::person::Person;
use crate::auth::{AssertionClaims, Auth, Grant, ServiceAccountKey, Signer, TokenSource};
use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::keys::KeyError;
use crate::members::{MemberList, fetch_members};
use crate::paging::{Page, Pager};
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::{KeyFile, Secret};
use idpsync_engine::reconcile::ListingScope;

/// Google's maximum page sizes: users 500, groups and members 200.
const USERS_PAGE: &str = "500";
const GROUPS_PAGE: &str = "200";
const MEMBERS_PAGE: &str = "200";
const SCOPES: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly \
https://www.googleapis.com/auth/admin.directory.group.readonly \
https://www.googleapis.com/auth/admin.directory.group.member.readonly";

/// `provider = "google"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("google");

/// The Directory API's root and Google's token endpoint, where the common keys do not say.
const API_ROOT: &str = "https://admin.googleapis.com";
const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// The keys of a Google Workspace integration, besides the common ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// The service account's JSON key file.
    service_account_key: KeyFile<ServiceAccountFile>,
    /// The admin user the service account acts for (domain-wide delegation).
    subject: String,
    /// `my_customer` (the default) or a customer id.
    customer: Option<String>,
}

/// The fields of Google's service account key file that are used.
#[derive(Deserialize)]
struct ServiceAccountFile {
    client_email: String,
    private_key_id: Option<String>,
    private_key: Secret,
}

impl Settings for Keys {
    type Provider = Google;

    fn check(self, endpoints: Endpoints) -> Result<(Url, Google), KeyError> {
        let google = Google {
            token_url: match endpoints.token_url {
                Some(url) => url,
                None => Url::parse(TOKEN_URL).expect("Google's token endpoint is a URL"),
            },
            service_account_key: self.service_account_key,
            subject: self.subject,
            customer: self.customer.unwrap_or_else(|| "my_customer".to_owned()),
        };
        let base_url = match endpoints.base_url {
            Some(url) => url,
            None => Url::parse(API_ROOT).expect("the Directory API's root is a URL"),
        };
        Ok((base_url, google))
    }
}

/// A checked Google Workspace integration: a service account acting for an admin.
#[derive(Debug)]
struct Google {
    token_url: Url,
    service_account_key: KeyFile<ServiceAccountFile>,
    subject: String,
    customer: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Users {
    #[serde(default)]
    users: Vec<GoogleUser>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GoogleUser {
    id: String,
    primary_email: Option<String>,
    #[serde(default)]
    suspended: Option<bool>,
    #[serde(default)]
    archived: Option<bool>,
    name: Option<GoogleName>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GoogleName {
    given_name: Option<String>,
    family_name: Option<String>,
    full_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Groups {
    #[serde(default)]
    groups: Vec<GoogleGroup>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct GoogleGroup {
    id: String,
    name: Option<String>,
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Members {
    #[serde(default)]
    members: Vec<GoogleMember>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct GoogleMember {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Lists `path` page by page with `pageToken`.
async fn each<P: DeserializeOwned, T>(
    client: &IdpClient,
    run: &Run<'_>,
    resource: String,
    path: &str,
    query: &[(&str, &str)],
    split: impl Fn(P) -> Page<T>,
    mut add: impl FnMut(T) -> bool,
) -> Result<(), DriverError> {
    let mut pager = Pager::new(resource);
    while let Some(cursor) = pager.cursor() {
        let mut query = query.to_vec();
        if let Some(token) = &cursor {
            query.push(("pageToken", token));
        }
        let (page, _) = client.get(client.url(path, &query), &[], run).await?;
        pager.take(split(page), &mut add, run)?;
    }
    Ok(())
}

/// The direct members of one group; members that are neither users nor groups (the whole
/// customer, external addresses) are skipped with a warning.
async fn group_members(client: &IdpClient, run: &Run<'_>, group: String) -> Result<Vec<ExternalMember>, DriverError> {
    let mut members = MemberList::default();
    let mut unsupported = HashSet::new();
    each(
        client,
        run,
        format!("members of group {group}"),
        &format!("/admin/directory/v1/groups/{group}/members"),
        &[("maxResults", MEMBERS_PAGE)],
        |page: Members| Page {
            items: page.members,
            next: page.next_page_token,
        },
        |member| {
            let member = match (member.kind.as_deref(), member.id) {
                (Some("USER"), Some(id)) => ExternalMember::User(id),
                (Some("GROUP"), Some(id)) => ExternalMember::Group(id),
                // CUSTOMER (everyone in the account) and external members have no user here;
                // each counts once, so that a repeated page still reads as nothing new.
                (_, id) => return unsupported.insert(id.unwrap_or_default()),
            };
            members.add(member)
        },
    )
    .await?;
    if !unsupported.is_empty() {
        run.warn(format!(
            "group {group}: {} member(s) that are neither users nor groups were skipped",
            unsupported.len()
        ));
    }
    Ok(members.into_members())
}

#[async_trait::async_trait]
impl Provider for Google {
    fn auth(&self) -> Result<Auth, DriverError> {
        let file = self.service_account_key.resolve("service_account_key")?;
        let service_account = ServiceAccountKey {
            issuer: file.client_email,
            key_id: file.private_key_id,
            private_key: file.private_key,
        };
        let grant = Grant::JwtBearer {
            signer: Signer::from_service_account(&service_account)?,
            claims: AssertionClaims {
                issuer: service_account.issuer,
                subject: self.subject.clone(),
                audience: self.token_url.to_string(),
                scope: SCOPES.to_owned(),
                scope_in_assertion: true,
            },
        };
        Ok(TokenSource::auth(self.token_url.clone(), grant))
    }

    fn incremental(&self) -> bool {
        false
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, _since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let mut listing = run.listing(ListingScope::Complete);
        let customer = self.customer.as_str();
        each(
            client,
            run,
            "users".to_owned(),
            "/admin/directory/v1/users",
            &[("customer", customer), ("maxResults", USERS_PAGE)],
            |page: Users| Page {
                items: page.users,
                next: page.next_page_token,
            },
            |user| {
                let name = user.name.as_ref();
                let person = Person {
                    user_name: user.primary_email.as_deref(),
                    email: user.primary_email.as_deref(),
                    given_name: name.and_then(|name| name.given_name.as_deref()),
                    family_name: name.and_then(|name| name.family_name.as_deref()),
                    display_name: name.and_then(|name| name.full_name.as_deref()),
                };
                let active = !user.suspended.unwrap_or(false) && !user.archived.unwrap_or(false);
                listing.add_user(person.into_user(user.id.clone(), active))
            },
        )
        .await?;
        let mut groups = Vec::new();
        each(
            client,
            run,
            "groups".to_owned(),
            "/admin/directory/v1/groups",
            &[("customer", customer), ("maxResults", GROUPS_PAGE)],
            |page: Groups| Page {
                items: page.groups,
                next: page.next_page_token,
            },
            |group| {
                let display_name = group.name.or(group.email).unwrap_or_else(|| group.id.clone());
                let new = listing.add_group(SnapshotGroup {
                    external_id: group.id.clone(),
                    display_name: display_name.clone(),
                });
                if new {
                    groups.push((group.id, display_name));
                }
                new
            },
        )
        .await?;
        let named = groups.iter().map(|(id, name)| (id.as_str(), name.as_str()));
        fetch_members(&mut listing, &run.selection, named, |group| {
            group_members(client, run, group)
        })
        .await?;
        Ok(Fetched { listing, cursor: None })
    }
}
