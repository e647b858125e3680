//! Microsoft Entra ID through Microsoft Graph v1.0: client credentials, with a client secret
//! or a certificate (a client assertion signed by its private key); the global service or a
//! national cloud (`cloud`), which chooses the sign-in host and Graph's; `users/delta()` and
//! `groups/delta()` (with `members@delta`) for both the full round and the changes after it;
//! `@odata.nextLink` paging; the last page's `@odata.deltaLink` is the cursor. A delta link Graph
//! no longer knows (410, or 400 `syncStateNotFound`) makes the run list everything instead.
//! Members come with the groups, so the group filter costs no requests here. A delta names the
//! users who joined a group, not their objects: with `only_group_members`, those entering scope
//! are read by id (`GET /users?$filter=id in (…)`, 15 at a time), and the groups it takes a
//! member from are read again in full (`/groups/{id}/members`, nested groups followed), as the
//! user may still be in through a nested group.

use idpsync_engine::reconcile::{ExternalMember, GroupFilter, SnapshotGroup};
use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::person::Person;
use crate::auth::{Auth, Grant, TokenSource};
use crate::certificate::{self, PemSetting};
use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::keys::{self, KeyError};
use crate::members::{MemberList, Selection, fetch_members};
use crate::paging::Pages;
use crate::provider::{Cursor, Endpoints, Fetched, Provider, Settings, Vendor};
use crate::secret::SecretRef;
use idpsync_engine::reconcile::{Listing, ListingScope};

/// Items per delta page, asked with `Prefer: odata.maxpagesize` (delta functions take no
/// `$top`): Graph's maximum for users.
const MAX_PAGE_SIZE: &str = "odata.maxpagesize=999";
const PREFER: HeaderName = HeaderName::from_static("prefer");
const USER_FIELDS: &str = "id,userPrincipalName,accountEnabled,displayName,givenName,surname,mail";
const GROUP_FIELDS: &str = "id,displayName,members";

/// `provider = "entra"`.
pub(super) const VENDOR: Vendor = Vendor::new::<Keys>("entra");

/// The keys of an Entra integration, besides the common ones: a client secret, or a
/// certificate's private key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    /// The directory (tenant) id, for the token endpoint; not needed when `token_url` is given.
    tenant_id: Option<String>,
    /// The app registration's client id.
    client_id: String,
    /// Its client secret.
    client_secret: Option<SecretRef>,
    /// The private key (PEM) of a certificate uploaded to the app registration, instead of
    /// `client_secret`; the certificate's PEM may follow it in the same value.
    private_key: Option<SecretRef>,
    /// The certificate (PEM), when it is not in `private_key`'s PEM.
    certificate: Option<SecretRef>,
    /// The Microsoft cloud the tenant lives in.
    #[serde(default)]
    cloud: Cloud,
    /// The scope asked for; `<Graph origin>/.default` when absent.
    scope: Option<String>,
}

/// A Microsoft cloud: the global service or a national cloud, each with its own sign-in host
/// and Graph host (Microsoft Graph's "national cloud deployments").
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Cloud {
    /// The global service.
    #[default]
    Global,
    /// Microsoft Cloud for US Government, L4 (GCC High).
    UsGov,
    /// Microsoft Cloud for US Government, L5 (DoD).
    UsGovDod,
    /// Microsoft Azure and Microsoft 365 operated by 21Vianet in China.
    China,
}

impl Cloud {
    /// Where tokens are issued (`https://<host>/<tenant>/oauth2/v2.0/token`).
    fn login_host(self) -> &'static str {
        match self {
            Cloud::Global => "login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "login.microsoftonline.us",
            Cloud::China => "login.chinacloudapi.cn",
        }
    }

    /// Where Graph answers (`https://<host>/v1.0`).
    fn graph_host(self) -> &'static str {
        match self {
            Cloud::Global => "graph.microsoft.com",
            Cloud::UsGov => "graph.microsoft.us",
            Cloud::UsGovDod => "dod-graph.microsoft.us",
            Cloud::China => "microsoftgraph.chinacloudapi.cn",
        }
    }
}

impl Settings for Keys {
    type Provider = Entra;

    fn check(self, endpoints: Endpoints) -> Result<(Url, Entra), KeyError> {
        let base_url = match endpoints.base_url {
            Some(url) => url,
            None => Url::parse(&format!("https://{}/v1.0", self.cloud.graph_host())).expect("Graph's root is a URL"),
        };
        let token_url = match (endpoints.token_url, self.tenant_id) {
            (Some(url), _) => url,
            (None, Some(tenant)) => Url::parse(&format!(
                "https://{}/{tenant}/oauth2/v2.0/token",
                self.cloud.login_host()
            ))
            .map_err(|error| KeyError::invalid("tenant_id", error))?,
            (None, None) => {
                return Err(KeyError::Missing {
                    key: "tenant_id",
                    instead: Some("`token_url`"),
                });
            }
        };
        let scope = match self.scope {
            Some(scope) => scope,
            None => format!("{}/.default", base_url.origin().ascii_serialization()),
        };
        let credential = match (self.client_secret, self.private_key) {
            (Some(secret), private_key) => {
                keys::none_given_with(
                    "client_secret",
                    &[
                        ("private_key", private_key.is_some()),
                        ("certificate", self.certificate.is_some()),
                    ],
                )?;
                Credential::Secret(secret)
            }
            (None, Some(private_key)) => Credential::Certificate {
                private_key,
                certificate: self.certificate,
            },
            (None, None) => {
                return Err(KeyError::Missing {
                    key: "client_secret",
                    instead: Some("`private_key`"),
                });
            }
        };
        let entra = Entra {
            token_url,
            client_id: self.client_id,
            credential,
            scope,
        };
        Ok((base_url, entra))
    }
}

/// A checked Entra integration: client credentials.
#[derive(Debug)]
struct Entra {
    token_url: Url,
    client_id: String,
    credential: Credential,
    scope: String,
}

/// How the app registration proves who it is.
#[derive(Debug)]
enum Credential {
    /// A client secret.
    Secret(SecretRef),
    /// A certificate's private key; the certificate is in the key's PEM unless given apart.
    Certificate {
        private_key: SecretRef,
        certificate: Option<SecretRef>,
    },
}

/// A page of Graph objects, read straight into their types: a page of groups with their
/// members is tens of megabytes of JSON, which a tree of JSON values would hold several times
/// over.
#[derive(Deserialize)]
struct DeltaPage<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink")]
    delta_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUser {
    id: String,
    /// Present when a delta says the user was deleted.
    #[serde(rename = "@removed")]
    removed: Option<IgnoredAny>,
    user_principal_name: Option<String>,
    account_enabled: Option<bool>,
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    mail: Option<String>,
}

#[derive(Deserialize)]
struct GraphGroup {
    id: String,
    /// Present when a delta says the group was deleted.
    #[serde(rename = "@removed")]
    removed: Option<IgnoredAny>,
    #[serde(rename = "displayName")]
    display_name: Option<String>,
    #[serde(rename = "members@delta", default)]
    members: Vec<DeltaMember>,
}

#[derive(Deserialize)]
struct DeltaMember {
    id: String,
    #[serde(rename = "@odata.type")]
    odata_type: Option<MemberType>,
    /// Present when a delta says the member left.
    #[serde(rename = "@removed")]
    removed: Option<IgnoredAny>,
}

/// What a member is, by its `@odata.type`.
#[derive(Deserialize)]
enum MemberType {
    #[serde(rename = "#microsoft.graph.user")]
    User,
    #[serde(rename = "#microsoft.graph.group")]
    Group,
    /// Devices, service principals, contacts: not identities this product syncs.
    #[serde(other)]
    Other,
}

impl DeltaMember {
    /// The member, if it is an identity this product syncs.
    fn into_member(self) -> Option<ExternalMember> {
        match self.odata_type? {
            MemberType::User => Some(ExternalMember::User(self.id)),
            MemberType::Group => Some(ExternalMember::Group(self.id)),
            MemberType::Other => None,
        }
    }
}

/// Which object a delta round lists.
#[derive(Clone, Copy)]
enum Round {
    Users,
    Groups,
}

impl Round {
    fn name(self) -> &'static str {
        match self {
            Round::Users => "users",
            Round::Groups => "groups",
        }
    }
}

#[async_trait::async_trait]
impl Provider for Entra {
    fn auth(&self) -> Result<Auth, DriverError> {
        let grant = match &self.credential {
            Credential::Secret(secret) => Grant::ClientSecretPost {
                client_id: self.client_id.clone(),
                client_secret: secret.resolve("client_secret")?,
                extra: vec![("scope", self.scope.clone())],
            },
            Credential::Certificate {
                private_key,
                certificate,
            } => {
                let key = PemSetting {
                    key: "private_key",
                    text: &private_key.resolve("private_key")?,
                };
                let apart = certificate.as_ref().map(|pem| pem.resolve("certificate")).transpose()?;
                let certificate = match &apart {
                    Some(text) => PemSetting {
                        key: "certificate",
                        text,
                    },
                    None => key,
                };
                Grant::CertificateAssertion {
                    client_id: self.client_id.clone(),
                    signer: certificate::signer(key, certificate)?,
                    scope: self.scope.clone(),
                }
            }
        };
        Ok(TokenSource::auth(self.token_url.clone(), grant))
    }

    fn incremental(&self) -> bool {
        true
    }

    async fn list(&self, client: &IdpClient, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError> {
        let (scope, users_start, groups_start) = match since {
            None => (
                ListingScope::Complete,
                client.url("/users/delta()", &[("$select", USER_FIELDS)]),
                client.url("/groups/delta()", &[("$select", GROUP_FIELDS)]),
            ),
            Some(Cursor::GraphDelta { users, groups }) => (
                ListingScope::Incremental,
                client
                    .next_url(users)
                    .map_err(|error| DriverError::CursorExpired(error.to_string()))?,
                client
                    .next_url(groups)
                    .map_err(|error| DriverError::CursorExpired(error.to_string()))?,
            ),
            Some(other) => {
                return Err(DriverError::CursorExpired(format!(
                    "{other:?} is not a Graph delta link"
                )));
            }
        };
        let mut listing = run.listing(scope);
        let users = delta_round(client, run, &mut listing, Round::Users, users_start).await?;
        let groups = delta_round(client, run, &mut listing, Round::Groups, groups_start).await?;
        if scope == ListingScope::Incremental && run.selection.nested {
            refresh_groups_losing_members(client, run, &mut listing).await?;
        }
        Ok(Fetched {
            listing,
            cursor: Some(Cursor::GraphDelta { users, groups }),
        })
    }

    async fn add_users(
        &self,
        client: &IdpClient,
        run: &Run<'_>,
        listing: &mut Listing,
        ids: &[String],
    ) -> Result<bool, DriverError> {
        for chunk in ids.chunks(IDS_PER_FILTER) {
            let url = client.url(
                "/users",
                &[("$filter", &filter_by_ids(chunk)?), ("$select", USER_FIELDS)],
            );
            let (page, _): (DeltaPage<GraphUser>, _) = client.get(url.clone(), &[], run).await?;
            for user in page.value {
                add_user(listing, user);
            }
        }
        Ok(true)
    }
}

/// With `only_group_members`, the full member lists (nested groups followed) of the groups a
/// delta takes a member from: a delta says who left a group, not that the user is still in it
/// through a nested group the integration does not sync, which only the member lists show.
async fn refresh_groups_losing_members(
    client: &IdpClient,
    run: &Run<'_>,
    listing: &mut Listing,
) -> Result<(), DriverError> {
    let groups = listing.groups_losing_members();
    if groups.is_empty() {
        return Ok(());
    }
    // Every group named here is read whatever its name: the delta does not always say it.
    let selection = Selection {
        groups: GroupFilter::default(),
        nested: true,
        concurrency: run.selection.concurrency,
    };
    let named = groups.iter().map(|id| (id.as_str(), id.as_str()));
    fetch_members(listing, &selection, named, |group| async move {
        let mut members = MemberList::default();
        let mut pages = Pages::new(format!("members of group {group}"));
        let mut url = client.url(
            &format!("/groups/{group}/members"),
            &[("$select", "id"), ("$top", "999")],
        );
        loop {
            let (page, _): (DeltaPage<DeltaMember>, _) = client.get(url.clone(), &[], run).await?;
            let page_items = page.value.len();
            let mut new_items = 0;
            for member in page.value.into_iter().filter_map(DeltaMember::into_member) {
                new_items += usize::from(members.add(member));
            }
            match pages.follow(page.next_link, page_items, new_items, run)? {
                Some(next) => url = client.next_url(&next)?,
                None => return Ok(members.into_members()),
            }
        }
    })
    .await
}

/// Ids in one `$filter=id in (…)`: Graph's limit on the values of `in`.
const IDS_PER_FILTER: usize = 15;

/// `id in ('…', …)` for `ids`, Graph object ids (a GUID's hexadecimal digits and hyphens):
/// nothing else goes into a filter expression.
fn filter_by_ids(ids: &[String]) -> Result<String, DriverError> {
    if let Some(id) = ids
        .iter()
        .find(|id| !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
    {
        return Err(DriverError::InvalidResponse {
            url: "groups/delta()".to_owned(),
            message: format!("a group names a member {id:?}, which is not a Graph object id"),
        });
    }
    let quoted: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    Ok(format!("id in ({})", quoted.join(",")))
}

/// Follows one delta round to its delta link, adding what it reads to `listing`.
async fn delta_round(
    client: &IdpClient,
    run: &Run<'_>,
    listing: &mut Listing,
    round: Round,
    start: Url,
) -> Result<String, DriverError> {
    let mut pages = Pages::new(round.name());
    let mut url = start;
    loop {
        let page = match round {
            Round::Users => {
                read_delta_page(client, run, listing, &url, |listing, user, _| {
                    Ok(add_user(listing, user))
                })
                .await?
            }
            Round::Groups => read_delta_page(client, run, listing, &url, add_group).await?,
        };
        // The page that carries the delta link ends the round, whatever else it carries.
        if let Some(delta_link) = page.delta_link {
            return Ok(delta_link);
        }
        let Some(next) = pages.follow(page.next_link, page.items, page.new_items, run)? else {
            return Err(DriverError::PartialListing {
                resource: round.name().to_owned(),
                reason: "the round ended without an @odata.deltaLink".to_owned(),
            });
        };
        url = client.next_url(&next)?;
    }
}

/// A page of a delta round, its items added to the listing.
struct ReadPage {
    /// How many items the page had.
    items: usize,
    /// How many of them were new to the listing.
    new_items: usize,
    next_link: Option<String>,
    delta_link: Option<String>,
}

/// Reads one page of a delta round at `url` and adds its items to `listing` with `add`; a
/// delta link Graph no longer takes is [`DriverError::CursorExpired`].
async fn read_delta_page<T: serde::de::DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
    listing: &mut Listing,
    url: &Url,
    add: fn(&mut Listing, T, &Url) -> Result<usize, DriverError>,
) -> Result<ReadPage, DriverError> {
    let page_size = [(PREFER, HeaderValue::from_static(MAX_PAGE_SIZE))];
    let page: DeltaPage<T> = match client.get(url.clone(), &page_size, run).await {
        Ok((page, _)) => page,
        Err(DriverError::Status { status, message, .. })
            if listing.scope() == ListingScope::Incremental && is_expired_delta(status, &message) =>
        {
            return Err(DriverError::CursorExpired(message));
        }
        Err(error) => return Err(error),
    };
    let items = page.value.len();
    let mut new_items = 0;
    for item in page.value {
        new_items += add(listing, item, url)?;
    }
    Ok(ReadPage {
        items,
        new_items,
        next_link: page.next_link,
        delta_link: page.delta_link,
    })
}

/// Whether Graph refused a delta link because its token expired: 410 Gone, or 400 with one of
/// the resync codes (`syncStateNotFound` once the token is too old).
fn is_expired_delta(status: u16, message: &str) -> bool {
    status == 410
        || (status == 400
            && ["syncStateNotFound", "syncStateInvalid", "resyncRequired"]
                .iter()
                .any(|code| message.contains(code)))
}

/// Adds a user of a page (or its deletion, in a delta); returns how many items it added.
fn add_user(listing: &mut Listing, user: GraphUser) -> usize {
    if user.removed.is_some() {
        listing.removed_user(user.id);
        return 1;
    }
    let person = Person {
        user_name: user.user_principal_name.as_deref(),
        email: user.mail.as_deref(),
        given_name: user.given_name.as_deref(),
        family_name: user.surname.as_deref(),
        display_name: user.display_name.as_deref(),
    };
    // A user without accountEnabled in the answer is one Graph did not say is enabled.
    let active = user.account_enabled.unwrap_or(false);
    usize::from(listing.add_user(person.into_user(user.id.clone(), active)))
}

/// Adds a group of a page with its members (or its deletion, in a delta); returns how many
/// items it added.
fn add_group(listing: &mut Listing, group: GraphGroup, url: &Url) -> Result<usize, DriverError> {
    if group.removed.is_some() {
        listing.removed_group(group.id);
        return Ok(1);
    }
    let mut new_items = 0;
    match group.display_name {
        Some(display_name) => {
            new_items += usize::from(listing.add_group(SnapshotGroup {
                external_id: group.id.clone(),
                display_name,
            }));
        }
        // A group that only changed members comes without its name in a delta round.
        None if listing.scope() == ListingScope::Incremental => {}
        None => {
            return Err(DriverError::InvalidResponse {
                url: url.to_string(),
                message: format!("group {} has no displayName", group.id),
            });
        }
    }
    for member in group.members {
        let left = member.removed.is_some();
        let Some(member_ref) = member.into_member() else {
            continue;
        };
        match listing.scope() {
            ListingScope::Complete if !left => {
                new_items += usize::from(listing.add_member(&group.id, member_ref));
            }
            ListingScope::Complete => {}
            ListingScope::Incremental => {
                listing.delta_edge(&group.id, member_ref, !left);
                new_items += 1;
            }
        }
    }
    Ok(new_items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked settings of `text`, with the endpoints that the common keys give.
    fn check(text: &str, endpoints: Endpoints) -> Result<(Url, Entra), KeyError> {
        let keys: Keys = crate::keys::parse(toml::from_str(text).unwrap())?;
        keys.check(endpoints)
    }

    fn defaults() -> Endpoints {
        Endpoints {
            base_url: None,
            token_url: None,
        }
    }

    const SECRET: &str = "tenant_id = \"contoso\"\nclient_id = \"app\"\nclient_secret = \"s3cret\"\n";

    #[test]
    fn the_token_endpoint_and_scope_follow_the_tenant_and_the_cloud() {
        let national = Endpoints {
            base_url: Some(Url::parse("https://graph.microsoft.us/v1.0").unwrap()),
            token_url: None,
        };
        let (base_url, entra) = check(SECRET, national).unwrap();
        assert_eq!(base_url.as_str(), "https://graph.microsoft.us/v1.0");
        assert_eq!(
            entra.token_url.as_str(),
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
        );
        assert_eq!(entra.scope, "https://graph.microsoft.us/.default");
    }

    #[test]
    fn each_cloud_has_its_sign_in_host_its_graph_host_and_its_scope() {
        let clouds = [
            (None, "login.microsoftonline.com", "graph.microsoft.com"),
            (Some("global"), "login.microsoftonline.com", "graph.microsoft.com"),
            (Some("us_gov"), "login.microsoftonline.us", "graph.microsoft.us"),
            (Some("us_gov_dod"), "login.microsoftonline.us", "dod-graph.microsoft.us"),
            (
                Some("china"),
                "login.chinacloudapi.cn",
                "microsoftgraph.chinacloudapi.cn",
            ),
        ];
        for (cloud, login, graph) in clouds {
            let setting = cloud.map(|cloud| format!("cloud = \"{cloud}\"\n")).unwrap_or_default();
            let (base_url, entra) = check(&format!("{SECRET}{setting}"), defaults()).unwrap();
            assert_eq!(base_url.as_str(), format!("https://{graph}/v1.0"), "{cloud:?}");
            assert_eq!(
                entra.token_url.as_str(),
                format!("https://{login}/contoso/oauth2/v2.0/token"),
                "{cloud:?}"
            );
            assert_eq!(entra.scope, format!("https://{graph}/.default"), "{cloud:?}");
        }
        let error = check(&format!("{SECRET}cloud = \"germany\""), defaults())
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("key `cloud`: unknown variant `germany`"), "{error}");
    }

    #[test]
    fn explicit_endpoints_override_the_cloud_s() {
        let fake = Endpoints {
            base_url: Some(Url::parse("http://127.0.0.1:8080/v1.0").unwrap()),
            token_url: Some(Url::parse("http://127.0.0.1:8080/contoso/oauth2/v2.0/token").unwrap()),
        };
        let (base_url, entra) = check(&format!("{SECRET}cloud = \"china\""), fake).unwrap();
        assert_eq!(base_url.as_str(), "http://127.0.0.1:8080/v1.0");
        assert_eq!(
            entra.token_url.as_str(),
            "http://127.0.0.1:8080/contoso/oauth2/v2.0/token"
        );
        assert_eq!(entra.scope, "http://127.0.0.1:8080/.default");
        // A Graph root of one's own (a proxy) keeps the cloud's sign-in host.
        let proxied = Endpoints {
            base_url: Some(Url::parse("https://graph-proxy.example.com/v1.0").unwrap()),
            token_url: None,
        };
        let (_, entra) = check(
            &format!("{SECRET}cloud = \"us_gov_dod\"\nscope = \"https://dod-graph.microsoft.us/.default\""),
            proxied,
        )
        .unwrap();
        assert_eq!(
            entra.token_url.as_str(),
            "https://login.microsoftonline.us/contoso/oauth2/v2.0/token"
        );
        assert_eq!(entra.scope, "https://dod-graph.microsoft.us/.default");
    }

    #[test]
    fn a_secret_or_a_certificate_not_both_nor_neither() {
        let base = "tenant_id = \"contoso\"\nclient_id = \"app\"\n";
        let (_, entra) = check(
            &format!("{base}private_key = \"file:/etc/idpsync/entra.pem\""),
            defaults(),
        )
        .unwrap();
        assert!(matches!(
            entra.credential,
            Credential::Certificate { certificate: None, .. }
        ));
        let (_, entra) = check(
            &format!(
                "{base}private_key = \"file:/etc/idpsync/entra.key\"\ncertificate = \"file:/etc/idpsync/entra.crt\""
            ),
            defaults(),
        )
        .unwrap();
        assert!(matches!(
            entra.credential,
            Credential::Certificate {
                certificate: Some(_),
                ..
            }
        ));
        let refused = [
            (
                format!("{base}client_secret = \"s\"\nprivate_key = \"k\""),
                KeyError::DoesNotApply {
                    key: "private_key",
                    given: "client_secret",
                },
            ),
            (
                format!("{base}client_secret = \"s\"\ncertificate = \"c\""),
                KeyError::DoesNotApply {
                    key: "certificate",
                    given: "client_secret",
                },
            ),
            (
                base.to_owned(),
                KeyError::Missing {
                    key: "client_secret",
                    instead: Some("`private_key`"),
                },
            ),
        ];
        for (text, expected) in refused {
            assert_eq!(check(&text, defaults()).err(), Some(expected), "{text}");
        }
    }
}
