//! The harness of the admin console's tests: the whole service (`idpsync::server::service`,
//! console included) on `127.0.0.1:0` over an in-memory log, with tenant `acme`, an Okta
//! integration `okta` scheduled against a fake Okta (ten people, `person0@example.com`…, in group `vpn`, bound to a
//! route), and helpers to make the guard hold a sync.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use idpsync::api::{ApiSettings, ApiState};
use idpsync::engine::ids::SyncRunId;
use idpsync::engine::{Engine, Event, LoggedEvent, Source, Tenant, TenantSettings};
use idpsync::server::{HttpLimits, ServiceSettings};
use idpsync::storage::{MemoryStore, Seq, TenantId};
use idpsync::token_book::TokenBook;
use idpsync::tokens::{TokenAuthenticator, TokenKind, TokenStore};
use idpsync_drivers::cursor_store::CursorStore;
use idpsync_drivers::fake::{Directory, FakeIdp, FakeMember, Vendor};
use idpsync_drivers::scheduler::{Scheduled, Scheduler};
use idpsync_drivers::{Driver, IntegrationConfig, RetryPolicy};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The tenant every console test signs in to.
pub const TENANT: &str = "acme";
/// People in the fake directory at the start.
pub const PEOPLE: usize = 10;

/// A running service with its console, an integration and a fake IdP.
pub struct Console {
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub engine: Arc<Engine>,
    pub tenant: Arc<Tenant>,
    pub tokens: TokenStore,
    pub fake: FakeIdp,
    scheduler: Option<Scheduler>,
    data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn directory() -> Directory {
    let mut directory = Directory::default();
    directory.put_group("g-vpn", "vpn");
    for n in 0..PEOPLE {
        let id = format!("{}", 1000 + n);
        directory.put_user(&id, &format!("person{n}"), true);
        directory.join("g-vpn", FakeMember::User(id));
    }
    directory
}

impl Console {
    /// Starts the service; the integration's first sync has brought the people in and their
    /// group is bound to route `r-vpn` when this returns.
    pub async fn start() -> Console {
        let data_dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(
            Engine::open(Arc::new(MemoryStore::new()), TenantSettings::default())
                .await
                .unwrap(),
        );
        let tenant = engine.ensure_tenant(&TenantId::new(TENANT).unwrap()).await.unwrap();
        let fake = FakeIdp::start(Vendor::Okta, directory(), false).await;
        let config = IntegrationConfig::from_toml(&format!(
            "name = \"okta\"\ninterval = \"1h\"\n{}",
            fake.integration_toml()
        ))
        .unwrap();
        let retries = RetryPolicy {
            attempts_max: 2,
            backoff_base: Duration::from_millis(10),
            ..RetryPolicy::default()
        };
        let scheduler = Scheduler::start(vec![Scheduled {
            tenant: Arc::clone(&tenant),
            driver: Arc::new(Driver::new(config, retries).unwrap()),
            cursors: CursorStore::new(data_dir.path().join("drivers").join(TENANT)),
        }]);
        let tokens = TokenStore::new(data_dir.path());
        let api = ApiState::new(
            Arc::clone(&engine),
            Arc::new(TokenAuthenticator::admin(tokens.clone()).unwrap()),
            ApiSettings {
                integrations: Some(scheduler.handle()),
                tokens: Some(TokenBook::File(tokens.clone())),
                data_dir: Some(data_dir.path().to_owned()),
                ..ApiSettings::default()
            },
        )
        .unwrap();
        let limits = HttpLimits::default();
        let router = idpsync::server::service(
            Arc::clone(&engine),
            Arc::new(TokenAuthenticator::new(tokens.clone()).unwrap()),
            api.clone(),
            idpsync::metrics::install().unwrap(),
            &ServiceSettings {
                http: limits,
                ..ServiceSettings::default()
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let streams = api.clone();
        let task = tokio::spawn(async move {
            idpsync::server::run(listener, router, &limits, async move {
                let _ = stopped.await;
                streams.close_streams();
            })
            .await
            .unwrap();
        });
        let console = Console {
            origin,
            engine,
            tenant,
            tokens,
            fake,
            scheduler: Some(scheduler),
            data_dir,
            stop: Some(stop),
            task: Some(task),
        };
        console.sync_now();
        console
            .eventually("the first sync", || console.owned_users() == PEOPLE)
            .await;
        console.bind_vpn_group().await;
        console
    }

    /// A new admin token of the tenant.
    pub fn admin_token(&self) -> String {
        self.tokens
            .create(&TenantId::new(TENANT).unwrap(), "console", TokenKind::Admin)
            .unwrap()
            .1
    }

    /// The users the integration owns.
    pub fn owned_users(&self) -> usize {
        self.tenant
            .state()
            .users_owned_by(&idpsync::engine::ids::IntegrationName::new("okta").unwrap())
            .count()
    }

    /// Binds group `vpn` to route `r-vpn`, through the API.
    async fn bind_vpn_group(&self) {
        let admin = self
            .tokens
            .create(&TenantId::new(TENANT).unwrap(), "network-admin", TokenKind::Admin)
            .unwrap()
            .1;
        let api = format!("{}/api/v1/tenants/{TENANT}", self.origin);
        let client = reqwest::Client::new();
        let groups: Value = client
            .get(format!("{api}/groups"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let vpn = groups["items"][0]["id"].as_str().unwrap().to_owned();
        let answer = client
            .put(format!("{api}/bindings/route/r-vpn"))
            .bearer_auth(&admin)
            .json(&json!({"groups": [vpn]}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    }

    /// Removes all but two people from the fake directory: the next sync takes them out of
    /// group `vpn`, and with it route `r-vpn`, from eight of ten, which the guard (10 %) holds.
    pub fn remove_most_people(&self) {
        self.fake.edit(|directory| {
            for n in 2..PEOPLE {
                directory.delete_user(&format!("{}", 1000 + n));
            }
        });
    }

    /// Starts a run of the integration now (the schedule's first run comes only after a
    /// random part of its interval).
    pub fn sync_now(&self) {
        self.scheduler
            .as_ref()
            .unwrap()
            .handle()
            .trigger(
                self.tenant.id(),
                &idpsync::engine::ids::IntegrationName::new("okta").unwrap(),
            )
            .unwrap();
    }

    /// Makes the guard hold a sync: most people removed, then a run now.
    pub async fn hold_a_sync(&self) {
        self.remove_most_people();
        self.sync_now();
        self.eventually("a held sync", || !self.tenant.held().is_empty()).await;
    }

    /// Waits up to 30 s for `check`.
    pub async fn eventually(&self, what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every event of the tenant's log, in order.
    pub async fn events(&self) -> Vec<LoggedEvent> {
        let records = self
            .engine
            .store()
            .read(self.tenant.id(), Seq(1), 1_000_000)
            .await
            .unwrap();
        records
            .iter()
            .map(|record| idpsync::engine::event::decode_record(record).unwrap())
            .collect()
    }

    /// How many users the records of sync run `run` took access from: each membership it
    /// removed, and each user it deleted or deactivated (the deletion feed of the fake IdP
    /// reports a deleted user as deleted, which ends the user's memberships with it).
    pub async fn removed_by(&self, run: SyncRunId) -> usize {
        self.events()
            .await
            .iter()
            .filter(|event| matches!(&event.envelope.source, Source::Integration { run: logged, .. } if *logged == run))
            .map(|event| match &event.envelope.event {
                Event::MembersRemoved { members, .. } => members.len(),
                Event::UserDeleted { .. } | Event::UserDeactivated { .. } => 1,
                _ => 0,
            })
            .sum()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        if let Some(scheduler) = self.scheduler.take() {
            scheduler.shutdown().await;
        }
        self.engine.shutdown().await;
    }
}

/// The value of the first `name="csrf"` hidden field of a page.
pub fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}
