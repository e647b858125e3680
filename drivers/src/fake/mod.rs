//! Stateful fake IdP servers for tests and benchmarks (feature `fake`): one axum server on
//! `127.0.0.1:0` per fake, serving a [`Directory`] in one vendor's shapes, paths, paging and
//! auth, issuing tokens, and misbehaving on request ([`Faults`]): 429 with the vendor's
//! rate-limit signals, 5xx, slow answers and connections dropped mid-body. The directory can be
//! changed between polls, or in the middle of a listing ([`FakeIdp::after_page`]); every
//! request is recorded ([`Recorded`]) for contract checks.

mod assertions;
mod feeds;
mod jobs;
mod vendors;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::certificate::Certificate;

pub use vendors::Vendor;

/// A user as the fake IdP holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeUser {
    /// Its id (numeric, so that every vendor's id type fits).
    pub id: String,
    /// Login name.
    pub user_name: String,
    /// Email.
    pub email: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// Whether it can sign in.
    pub active: bool,
    /// When it last changed (logical clock).
    pub updated: u64,
    /// When it last changed (wall clock), for the vendors that filter by it (Auth0).
    pub changed_at: SystemTime,
    /// When its status last changed (wall clock; Okta's `statusChanged`).
    pub status_changed: SystemTime,
}

/// A member of a fake group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FakeMember {
    /// A user, by id.
    User(String),
    /// A nested group, by id.
    Group(String),
}

/// A group as the fake IdP holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeGroup {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Direct members.
    pub members: BTreeSet<FakeMember>,
    /// When it or its members last changed (logical clock).
    pub updated: u64,
}

/// One change, for delta answers and the vendors' change feeds.
#[derive(Clone, Debug)]
enum Change {
    UserDeleted(String),
    UserDeactivated(String),
    GroupDeleted(String),
    Joined(String, FakeMember),
    Left(String, FakeMember),
}

/// A change as the directory logs it: when on its logical clock and on the wall clock. One
/// moment of the logical clock can log several changes (a user deleted leaves its groups).
#[derive(Clone, Debug)]
struct Logged {
    at: u64,
    published: SystemTime,
    change: Change,
}

/// What the fake IdP holds.
#[derive(Clone, Debug, Default)]
pub struct Directory {
    users: BTreeMap<String, FakeUser>,
    groups: BTreeMap<String, FakeGroup>,
    changes: Vec<Logged>,
    clock: u64,
    /// Delta tokens issued before this moment are no longer valid (Graph's `syncStateNotFound`).
    delta_horizon: u64,
    /// Served as Keycloak 22 and older do: no `/children`, subgroups inline.
    keycloak_22: bool,
    /// Served as Zitadel before v4 does: no v2 AuthorizationService (404), only v2beta.
    zitadel_before_v4: bool,
    /// The change feeds answer with what is not the vendor's shape.
    garbled_feeds: bool,
    /// The integration lacks the feeds' permission: they answer 403, and Okta's token
    /// endpoint refuses `okta.logs.read` (`invalid_scope`).
    feed_permission_withheld: bool,
    /// Auth0's users-export jobs end `failed`.
    export_jobs_fail: bool,
    /// Users Okta's "changed since" search does not find yet (its index lags its writes).
    okta_index_lag: BTreeSet<String>,
}

impl Directory {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn log(&mut self, at: u64, change: Change) {
        self.changes.push(Logged {
            at,
            published: SystemTime::now(),
            change,
        });
    }

    /// Adds or replaces a user.
    pub fn put_user(&mut self, id: &str, user_name: &str, active: bool) {
        let updated = self.tick();
        let (given, family) = user_name.split_once('.').unwrap_or((user_name, "Doe"));
        self.users.insert(
            id.to_owned(),
            FakeUser {
                id: id.to_owned(),
                user_name: user_name.to_owned(),
                email: format!("{user_name}@example.com"),
                given_name: given.to_owned(),
                family_name: family.split('@').next().unwrap_or(family).to_owned(),
                active,
                updated,
                changed_at: SystemTime::now(),
                status_changed: SystemTime::now(),
            },
        );
    }

    /// Activates or deactivates a user.
    pub fn set_active(&mut self, id: &str, active: bool) {
        let updated = self.tick();
        let user = self.users.get_mut(id).expect("the test names an existing user");
        user.active = active;
        user.updated = updated;
        user.changed_at = SystemTime::now();
        user.status_changed = SystemTime::now();
        if !active {
            self.log(updated, Change::UserDeactivated(id.to_owned()));
        }
    }

    /// Deletes a user and its memberships.
    pub fn delete_user(&mut self, id: &str) {
        let at = self.tick();
        self.users.remove(id);
        let member = FakeMember::User(id.to_owned());
        for group in self.groups.values_mut() {
            if group.members.remove(&member) {
                group.updated = at;
                self.changes.push(Logged {
                    at,
                    published: SystemTime::now(),
                    change: Change::Left(group.id.clone(), member.clone()),
                });
            }
        }
        self.log(at, Change::UserDeleted(id.to_owned()));
    }

    /// Adds or renames a group.
    pub fn put_group(&mut self, id: &str, name: &str) {
        let updated = self.tick();
        let group = self.groups.entry(id.to_owned()).or_insert_with(|| FakeGroup {
            id: id.to_owned(),
            name: name.to_owned(),
            members: BTreeSet::new(),
            updated,
        });
        group.name = name.to_owned();
        group.updated = updated;
    }

    /// Deletes a group.
    pub fn delete_group(&mut self, id: &str) {
        let at = self.tick();
        self.groups.remove(id);
        let member = FakeMember::Group(id.to_owned());
        for group in self.groups.values_mut() {
            if group.members.remove(&member) {
                group.updated = at;
            }
        }
        self.log(at, Change::GroupDeleted(id.to_owned()));
    }

    /// Adds a member to a group.
    pub fn join(&mut self, group: &str, member: FakeMember) {
        let at = self.tick();
        let entry = self.groups.get_mut(group).expect("the test names an existing group");
        if entry.members.insert(member.clone()) {
            entry.updated = at;
            self.log(at, Change::Joined(group.to_owned(), member));
        }
    }

    /// Removes a member from a group.
    pub fn leave(&mut self, group: &str, member: FakeMember) {
        let at = self.tick();
        let entry = self.groups.get_mut(group).expect("the test names an existing group");
        if entry.members.remove(&member) {
            entry.updated = at;
            self.log(at, Change::Left(group.to_owned(), member));
        }
    }

    /// Dates the newest change at `at` on the wall clock: its entries in the change feeds and,
    /// for a user whose status it changed, the user's time of its last status change.
    pub fn date_last_change(&mut self, at: SystemTime) {
        let newest = self.clock;
        for logged in self.changes.iter_mut().filter(|logged| logged.at == newest) {
            logged.published = at;
        }
        for user in self.users.values_mut().filter(|user| user.updated == newest) {
            user.status_changed = at;
        }
    }

    /// Invalidates every delta token issued so far, as Graph does once a token is too old.
    pub fn expire_delta_tokens(&mut self) {
        self.delta_horizon = self.tick();
    }

    /// Serves the groups as Keycloak 22 and older do: `GET /groups` brings each group's tree of
    /// subgroups inline (`subGroups`, no `subGroupCount`), and `/groups/{id}/children` does not
    /// exist (404).
    pub fn as_keycloak_22(&mut self) {
        self.keycloak_22 = true;
    }

    /// Makes every user's last change `ago` earlier, as if the users had been created that long
    /// before the test: a search by change time since a recent moment no longer finds them.
    pub fn backdate_users(&mut self, ago: Duration) {
        for user in self.users.values_mut() {
            user.changed_at = user.changed_at.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH);
        }
    }

    /// Serves Zitadel as instances before v4 do: the v2 AuthorizationService does not exist
    /// (404), the deprecated v2beta one does.
    pub fn as_zitadel_before_v4(&mut self) {
        self.zitadel_before_v4 = true;
    }

    /// Makes the change feeds (Okta's System Log, Auth0's log events, authentik's events)
    /// answer with a body that is not the vendor's shape.
    pub fn garble_feeds(&mut self) {
        self.garbled_feeds = true;
    }

    /// Withholds the change feeds' permission (Okta's `okta.logs.read` grant or the API token
    /// owner's log access, Auth0's `read:logs`, authentik's "Can view Event"): the feeds answer
    /// 403 in the vendor's words, and Okta's token endpoint refuses to issue `okta.logs.read`.
    pub fn withhold_feed_permission(&mut self) {
        self.feed_permission_withheld = true;
    }

    /// Makes Auth0's users-export jobs fail.
    pub fn fail_export_jobs(&mut self) {
        self.export_jobs_fail = true;
    }

    /// Grants the change feeds' permission again.
    pub fn grant_feed_permission(&mut self) {
        self.feed_permission_withheld = false;
    }

    /// Leaves a user out of Okta's `search=lastUpdated gt "…"` answers, as Okta's search index
    /// does until it catches up with a write; a search by id still finds it.
    pub fn lag_okta_index(&mut self, id: &str) {
        self.okta_index_lag.insert(id.to_owned());
    }

    /// Users, by id.
    pub fn users(&self) -> impl Iterator<Item = &FakeUser> {
        self.users.values()
    }

    /// Groups, by id.
    pub fn groups(&self) -> impl Iterator<Item = &FakeGroup> {
        self.groups.values()
    }
}

/// How the fake misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Answer this many of the next API requests with the vendor's rate-limit response.
    pub rate_limited: u32,
    /// What the rate-limit response asks to wait, in seconds.
    pub retry_after_seconds: u64,
    /// From this API request on (1-based, counted since the faults were set), fail.
    pub fail_from_request: Option<u64>,
    /// How requests fail from then on.
    pub failure: Failure,
    /// Answer every API request this late: the latency of a real vendor's API.
    pub delay: Duration,
    /// The vendor's rate limit: refuse what goes past it, and send the vendor's quota headers
    /// (Okta, Auth0) on every answer.
    pub quota: Option<Quota>,
}

/// A rate limit of `limit` API requests per window of `window_seconds`, windows aligned on the
/// clock's seconds (as Okta's and Auth0's reset times are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Requests per window.
    pub limit: u32,
    /// The window, in whole seconds (at least 1).
    pub window_seconds: u64,
}

impl Quota {
    /// The limit the vendor documents for a directory listing, where it documents one: Okta's
    /// 600 requests a minute (`/api/v1/users`, the lowest of the endpoints listed), Google's
    /// 2,400 queries a minute per project (Directory API), Graph's 3,500 requests per 10 s for
    /// one app in one tenant (identity and access, large tenants), Auth0's 15 a second
    /// (Management API, production tenants). JumpCloud, Keycloak, authentik and Zitadel
    /// document no number: `None`.
    pub fn documented(vendor: Vendor) -> Option<Quota> {
        let (limit, window_seconds) = match vendor {
            Vendor::Okta => (600, 60),
            Vendor::Google => (2_400, 60),
            Vendor::Entra => (3_500, 10),
            Vendor::Auth0 => (15, 1),
            Vendor::JumpCloud | Vendor::Keycloak | Vendor::Authentik | Vendor::Zitadel => return None,
        };
        Some(Quota { limit, window_seconds })
    }
}

/// Where a quota stands: the window being counted and the requests in it.
#[derive(Debug, Default)]
struct QuotaUse {
    window: u64,
    used: u32,
}

/// What a quota says of one request.
enum QuotaAnswer {
    /// Within the limit; the vendor's headers say what is left.
    Within { limit: u32, remaining: u32, reset: u64 },
    /// Over it, until `reset` (epoch seconds).
    Over { limit: u32, reset: u64 },
}

impl QuotaUse {
    fn count(&mut self, quota: Quota, now_unix: u64) -> QuotaAnswer {
        let seconds = quota.window_seconds.max(1);
        let window = now_unix / seconds;
        if window != self.window {
            *self = QuotaUse { window, used: 0 };
        }
        let reset = (window + 1) * seconds;
        if self.used >= quota.limit {
            return QuotaAnswer::Over {
                limit: quota.limit,
                reset,
            };
        }
        self.used += 1;
        QuotaAnswer::Within {
            limit: quota.limit,
            remaining: quota.limit - self.used,
            reset,
        }
    }
}

/// How a failing request fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 503.
    #[default]
    ServerError,
    /// Headers, half a body, then the connection breaks.
    DroppedConnection,
}

/// One request the fake answered, and its answer.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query pairs, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The request body, parsed when it was JSON or a form.
    pub body: Option<Value>,
    /// The status answered.
    pub status: u16,
    /// The answer's body, when JSON.
    pub response: Option<Value>,
}

/// A change to the directory, made once a path has been answered so many times.
struct Trigger {
    path: String,
    pages_left: u64,
    change: Box<dyn FnOnce(&mut Directory) + Send>,
}

struct Shared {
    vendor: Vendor,
    base: String,
    directory: Mutex<Directory>,
    triggers: Mutex<Vec<Trigger>>,
    faults: Mutex<(Faults, u64)>,
    quota_use: Mutex<QuotaUse>,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
    tokens: Mutex<HashSet<String>>,
    token_count: AtomicU64,
    recorded: Mutex<Vec<Recorded>>,
    record_bodies: bool,
    jobs: Mutex<jobs::Jobs>,
    /// The certificate registered with the app (Entra): client assertions must name it and be
    /// signed by its key.
    certificate: Mutex<Option<Certificate>>,
}

/// A running fake IdP.
pub struct FakeIdp {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

/// The credentials every fake accepts.
pub mod credentials {
    /// Client id for OAuth flows.
    pub const CLIENT_ID: &str = "fake-client";
    /// Client secret for OAuth flows.
    pub const CLIENT_SECRET: &str = "fake-secret";
    /// Static API tokens (Okta SSWS, JumpCloud key, authentik and Zitadel PAT).
    pub const API_TOKEN: &str = "fake-api-token";
    /// A test-only RSA key (PKCS #1 PEM), generated with openssl for the fakes; it protects
    /// nothing. It signs Google's and Okta's assertions, and Entra's with [`CERTIFICATE`].
    pub const PRIVATE_KEY: &str = include_str!("test_key.pem");
    /// A self-signed certificate of [`PRIVATE_KEY`] (`openssl req -new -x509 -key
    /// test_key.pem -days 36500 -sha256`), registered with every Entra fake.
    pub const CERTIFICATE: &str = include_str!("test_cert.pem");
    /// Another test-only key (PKCS #8 PEM) and its self-signed certificate, which no fake has
    /// registered: a credential the fakes refuse.
    pub const OTHER_PRIVATE_KEY: &str = include_str!("other_key.pem");
    /// The certificate of [`OTHER_PRIVATE_KEY`].
    pub const OTHER_CERTIFICATE: &str = include_str!("other_cert.pem");
}

impl FakeIdp {
    /// Starts a fake of `vendor` serving `directory`. With `record_bodies`, every answer's body
    /// is kept for contract checks (costly for large directories).
    pub async fn start(vendor: Vendor, directory: Directory, record_bodies: bool) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback has free ports");
        let address = listener.local_addr().expect("a bound listener has an address");
        let shared = Arc::new(Shared {
            vendor,
            base: format!("http://{address}"),
            directory: Mutex::new(directory),
            jobs: Mutex::new(jobs::Jobs::default()),
            triggers: Mutex::new(Vec::new()),
            faults: Mutex::new((Faults::default(), 0)),
            quota_use: Mutex::new(QuotaUse::default()),
            in_flight: AtomicU64::new(0),
            most_in_flight: AtomicU64::new(0),
            tokens: Mutex::new(HashSet::new()),
            token_count: AtomicU64::new(0),
            recorded: Mutex::new(Vec::new()),
            record_bodies,
            certificate: Mutex::new(
                (vendor == Vendor::Entra)
                    .then(|| Certificate::from_pem(credentials::CERTIFICATE).expect("the test certificate parses")),
            ),
        });
        let router = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeIdp {
            address,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The vendor.
    pub fn vendor(&self) -> Vendor {
        self.shared.vendor
    }

    /// Changes the directory.
    pub fn edit(&self, change: impl FnOnce(&mut Directory)) {
        change(&mut self.shared.directory.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Changes the directory right after the fake has answered `path` (under the vendor's
    /// [`Vendor::base_path`], e.g. `/systemusers`) successfully for the `page`th time (1-based,
    /// counted from now), before it answers anything else: an object deleted while a listing
    /// is read.
    pub fn after_page(&self, path: &str, page: u64, change: impl FnOnce(&mut Directory) + Send + 'static) {
        self.shared
            .triggers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Trigger {
                path: format!("{}{path}", self.shared.vendor.base_path()),
                pages_left: page,
                change: Box::new(change),
            });
    }

    /// Sets the faults; request counting starts again.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()) = (faults, 0);
    }

    /// The most API requests the fake has been answering at one moment.
    pub fn most_in_flight(&self) -> u64 {
        self.shared.most_in_flight.load(Ordering::SeqCst)
    }

    /// Forgets every token issued, as an IdP does when tokens are revoked or its keys roll.
    pub fn revoke_tokens(&self) {
        self.shared.tokens.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Takes the requests recorded so far.
    pub fn take_recorded(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.shared.recorded.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The integration's TOML (without `name`) that points a driver at this fake.
    pub fn integration_toml(&self) -> String {
        vendors::integration_toml(self.shared.vendor, &self.origin())
    }

    /// Registers `certificate` (PEM) with the app instead of the one it had (Entra): the
    /// certificate rolled over in the portal.
    pub fn register_certificate(&self, certificate: &str) {
        let certificate = Certificate::from_pem(certificate).expect("a certificate to register");
        *self.shared.certificate.lock().unwrap_or_else(|p| p.into_inner()) = Some(certificate);
    }

    /// The integration's TOML for an Entra fake reached with a certificate rather than a
    /// client secret: `private_key` and `certificate` as the settings take them (PEM, or
    /// `file:PATH`, `env:NAME`).
    pub fn entra_certificate_toml(&self, private_key: &str, certificate: &str) -> String {
        vendors::entra_certificate_toml(&self.origin(), private_key, certificate)
    }

    /// The integration's TOML for an Okta fake reached as an OAuth 2.0 service app
    /// (`private_key_jwt`) rather than with an API token.
    pub fn okta_service_app_toml(&self) -> String {
        vendors::okta_service_app_toml(&self.origin())
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn json_response(status: StatusCode, headers: Vec<(&'static str, String)>, body: Value) -> (Response, Option<Value>) {
    let mut response = (status, axum::Json(body.clone())).into_response();
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    (response, Some(body))
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A parsed request, as the vendor handlers see it.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Value>,
}

impl Call {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn number(&self, name: &str, default: usize) -> usize {
        self.param(name).and_then(|value| value.parse().ok()).unwrap_or(default)
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|query| {
            reqwest::Url::parse(&format!("http://x/?{query}"))
                .map(|url| {
                    url.query_pairs()
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok().or_else(|| {
        (!bytes.is_empty()).then(|| {
            let form: serde_json::Map<String, Value> =
                reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(&bytes)))
                    .map(|url| {
                        url.query_pairs()
                            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
            Value::Object(form)
        })
    });
    let call = Call {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: query.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    let (response, response_body) = answer(&shared, &call).await;
    let status = response.status().as_u16();
    shared
        .recorded
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Recorded {
            method: parts.method,
            path: parts.uri.path().to_owned(),
            query,
            headers: parts.headers,
            body,
            status,
            response: response_body.filter(|_| shared.record_bodies),
        });
    response
}

async fn answer(shared: &Shared, call: &Call) -> (Response, Option<Value>) {
    if vendors::is_token_path(shared.vendor, &call.path) && call.method == Method::POST {
        return issue_token(shared, call, &call.headers);
    }
    if shared.vendor == Vendor::Auth0 {
        let directory = shared.directory.lock().unwrap_or_else(|p| p.into_inner());
        let jobs = shared.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = jobs.download(call, &directory) {
            return (file, None);
        }
    }
    let in_flight = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_in_flight.fetch_max(in_flight, Ordering::SeqCst);
    let answered = answer_api(shared, call).await;
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    answered
}

/// Answers an API request (anything but a token request).
async fn answer_api(shared: &Shared, call: &Call) -> (Response, Option<Value>) {
    let vendor = shared.vendor;
    let headers = &call.headers;
    let (delay, fault, quota) = {
        let mut guard = shared.faults.lock().unwrap_or_else(|p| p.into_inner());
        let (faults, count) = &mut *guard;
        *count += 1;
        let fault = if faults.rate_limited > 0 {
            faults.rate_limited -= 1;
            Some(None)
        } else if faults.fail_from_request.is_some_and(|from| *count >= from) {
            Some(Some(faults.failure))
        } else {
            None
        };
        let fault = fault.map(|fault| (fault, faults.retry_after_seconds));
        (faults.delay, fault, faults.quota)
    };
    let now = now_unix();
    let quota = quota.map(|quota| {
        let mut quota_use = shared.quota_use.lock().unwrap_or_else(|p| p.into_inner());
        quota_use.count(quota, now)
    });
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let quota_headers = match quota {
        Some(QuotaAnswer::Over { limit, reset }) => {
            return vendors::rate_limited(vendor, reset.saturating_sub(now).max(1), now, Some(limit));
        }
        Some(QuotaAnswer::Within {
            limit,
            remaining,
            reset,
        }) => vendors::quota_headers(vendor, limit, remaining, reset),
        None => Vec::new(),
    };
    match fault {
        Some((None, retry_after)) => return vendors::rate_limited(vendor, retry_after, now, None),
        Some((Some(Failure::ServerError), _)) => {
            return json_response(StatusCode::SERVICE_UNAVAILABLE, vec![], json!({"error": "unavailable"}));
        }
        Some((Some(Failure::DroppedConnection), _)) => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from_static(b"{\"value\":[")),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "dropped")),
            ];
            let response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::new(ChunkBody { items: chunks.into() }))
                .expect("a static response builds");
            return (response, None);
        }
        None => {}
    }
    if !authorised(shared, headers) {
        return json_response(StatusCode::UNAUTHORIZED, vec![], json!({"error": "unauthorized"}));
    }
    // Answered under the lock: a page is rendered from the directory as it is at that moment.
    let mut directory = shared.directory.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(refusal) = vendors::refuse(vendor, call, &directory) {
        return refusal;
    }
    if vendor == Vendor::Auth0 {
        let mut jobs = shared.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(answer) = jobs.answer(&shared.base, call, &directory) {
            return answer;
        }
    }
    match vendors::route(vendor, &shared.base, call, &directory) {
        Some((mut headers, body)) => {
            run_triggers(shared, &call.path, &mut directory);
            headers.extend(quota_headers);
            json_response(StatusCode::OK, headers, body)
        }
        None => json_response(StatusCode::NOT_FOUND, vec![], json!({"error": "not found"})),
    }
}

/// Counts a successful answer to `path` and makes the changes that were waiting for it.
fn run_triggers(shared: &Shared, path: &str, directory: &mut Directory) {
    let mut triggers = shared.triggers.lock().unwrap_or_else(|p| p.into_inner());
    let mut index = 0;
    while index < triggers.len() {
        let trigger = &mut triggers[index];
        if trigger.path == path {
            if trigger.pages_left <= 1 {
                (triggers.remove(index).change)(directory);
                continue;
            }
            trigger.pages_left -= 1;
        }
        index += 1;
    }
}

/// A body that yields its chunks, then an error: the connection breaks mid-answer.
struct ChunkBody {
    items: std::collections::VecDeque<Result<Bytes, std::io::Error>>,
}

impl axum::body::HttpBody for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(self.items.pop_front().map(|item| item.map(http_body::Frame::data)))
    }
}

fn authorised(shared: &Shared, headers: &HeaderMap) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    // A vendor with static credentials may also take the tokens it issued (Okta's service
    // apps); none is issued by the others.
    vendors::static_auth(shared.vendor).is_some_and(|(name, expected)| header(name) == expected)
        || header("authorization")
            .strip_prefix("Bearer ")
            .is_some_and(|token| shared.tokens.lock().unwrap_or_else(|p| p.into_inner()).contains(token))
}

fn issue_token(shared: &Shared, call: &Call, headers: &HeaderMap) -> (Response, Option<Value>) {
    let form = call.body.clone().unwrap_or(Value::Null);
    let field = |name: &str| form.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let basic = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("Basic "));
    let audience = format!("{}{}", shared.base, call.path);
    let refusal = match field("grant_type").as_str() {
        // Entra checks a certificate's assertion against the certificate registered.
        "client_credentials" if shared.vendor == Vendor::Entra && !field("client_assertion").is_empty() => {
            let registered = shared.certificate.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match registered {
                Some(registered) => assertions::entra_assertion_refusal(
                    &registered,
                    &field("client_assertion_type"),
                    &field("client_assertion"),
                    &field("client_id"),
                    &audience,
                ),
                None => Some("AADSTS700027: no certificate is registered on application.".to_owned()),
            }
        }
        "client_credentials" => {
            let accepted = basic
                || (field("client_id") == credentials::CLIENT_ID
                    && field("client_secret") == credentials::CLIENT_SECRET)
                || !field("client_assertion").is_empty();
            (!accepted).then(|| "bad credentials".to_owned())
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            (!assertions::google_assertion_is_valid(&field("assertion"), &audience))
                .then(|| "bad credentials".to_owned())
        }
        _ => Some("bad credentials".to_owned()),
    };
    if let Some(description) = refusal {
        return json_response(
            StatusCode::UNAUTHORIZED,
            vec![],
            json!({"error": "invalid_client", "error_description": description}),
        );
    }
    let withheld = shared
        .directory
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .feed_permission_withheld;
    if let Some(refusal) = vendors::refuse_scope(shared.vendor, &field("scope"), withheld) {
        return refusal;
    }
    let token = format!("fake-token-{}", shared.token_count.fetch_add(1, Ordering::Relaxed));
    shared
        .tokens
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(token.clone());
    json_response(
        StatusCode::OK,
        vec![],
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "scope": field("scope")}),
    )
}
