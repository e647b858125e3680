//! Scenario tests: every driver against its stateful fake IdP, through the engine. Each
//! scenario runs for all eight vendors; a failure names the vendor.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use idpsync_drivers::cursor_store::CursorStore;
use idpsync_drivers::fake::{Directory, Failure, FakeIdp, FakeMember, Faults, Vendor};
use idpsync_drivers::sync::{Mode, Resync, SyncError, SyncOutcome, SyncResult, sync_once};
use idpsync_drivers::{Driver, IntegrationConfig};
use idpsync_engine::ids::{IntegrationName, Member};
use idpsync_engine::{Engine, Tenant};
use idpsync_storage::Seq;
use support::{fast_retries, open_tenant};

struct Harness {
    vendor: Vendor,
    fake: FakeIdp,
    driver: Driver,
    engine: Engine,
    tenant: Arc<Tenant>,
    cursors: CursorStore,
    name: IntegrationName,
    _dir: tempfile::TempDir,
}

/// 20 users; `vpn-eng` (1001–1010, and `vpn-ops` nested), `vpn-ops` (1011–1015), `sales`
/// (1016–1020).
fn seed() -> Directory {
    let mut directory = Directory::default();
    for n in 1001..=1020 {
        directory.put_user(&n.to_string(), &format!("user{n}.smith"), true);
    }
    for (id, name, users) in [
        ("g-eng", "vpn-eng", 1001..=1010),
        ("g-ops", "vpn-ops", 1011..=1015),
        ("g-sales", "sales", 1016..=1020),
    ] {
        directory.put_group(id, name);
        for n in users {
            directory.join(id, FakeMember::User(n.to_string()));
        }
    }
    directory.join("g-eng", FakeMember::Group("g-ops".into()));
    directory
}

async fn harness(vendor: Vendor, extra_toml: &str) -> Harness {
    harness_with(vendor, extra_toml, seed()).await
}

/// These scenarios are about the drivers: what a complete listing no longer contains is
/// removed at once, except in the scenario that counts the listings (the engine's
/// `tests/absence.rs` has the rest).
const ABSENCE_AT_ONCE: &str = "absent_listings = 1\n";

async fn harness_with(vendor: Vendor, extra_toml: &str, directory: Directory) -> Harness {
    start(vendor, &format!("{ABSENCE_AT_ONCE}{extra_toml}"), directory).await
}

/// A harness with exactly `extra_toml` besides the fake's keys.
async fn start(vendor: Vendor, extra_toml: &str, directory: Directory) -> Harness {
    let fake = FakeIdp::start(vendor, directory, false).await;
    let toml = format!(
        "name = \"it\"\nrequest_timeout = \"1s\"\nsync_timeout = \"60s\"\n{}{extra_toml}",
        fake.integration_toml()
    );
    let config = IntegrationConfig::from_toml(&toml).unwrap_or_else(|error| panic!("{vendor:?}: {error}"));
    let driver = Driver::new(config, fast_retries()).unwrap();
    let (engine, tenant) = open_tenant().await;
    let dir = tempfile::tempdir().unwrap();
    Harness {
        vendor,
        fake,
        driver,
        engine,
        tenant,
        cursors: CursorStore::new(dir.path()),
        name: IntegrationName::new("it").unwrap(),
        _dir: dir,
    }
}

impl Harness {
    async fn try_sync(&self, mode: Mode, resync: Resync) -> Result<SyncOutcome, SyncError> {
        sync_once(&self.driver, &self.tenant, &self.cursors, mode, resync).await
    }

    async fn sync(&self, resync: Resync) -> SyncOutcome {
        let outcome = self
            .try_sync(Mode::Apply, resync)
            .await
            .unwrap_or_else(|error| panic!("{:?}: {error}", self.vendor));
        assert_eq!(
            outcome.result,
            SyncResult::Applied,
            "{:?}: {:?}",
            self.vendor,
            outcome.report
        );
        outcome
    }

    fn user_active(&self, external_id: &str) -> Option<bool> {
        let state = self.tenant.state();
        let id = state.owned_user(&self.name, external_id)?;
        Some(state.user(id).unwrap().active)
    }

    fn group_name(&self, external_id: &str) -> Option<String> {
        let state = self.tenant.state();
        let id = state.owned_group(&self.name, external_id)?;
        Some(state.group(id).unwrap().display_name.clone())
    }

    /// The group's direct user members, by IdP id.
    fn members(&self, external_id: &str) -> BTreeSet<String> {
        let state = self.tenant.state();
        let Some(id) = state.owned_group(&self.name, external_id) else {
            return BTreeSet::new();
        };
        state
            .direct_members(id)
            .filter_map(|member| match member {
                Member::User(user) => state.user(user).unwrap().external_id.clone(),
                Member::Group(_) => None,
            })
            .collect()
    }

    /// The vendor's id for a fake group: Auth0 roles and Zitadel role grants have their own.
    fn group_id(&self, fake_id: &str, name: &str) -> String {
        match self.vendor {
            Vendor::Auth0 => format!("role:rol_{fake_id}"),
            Vendor::Zitadel => format!("p1:{name}"),
            _ => fake_id.to_owned(),
        }
    }
}

fn ids(range: std::ops::RangeInclusive<u32>) -> BTreeSet<String> {
    range.map(|n| n.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_sync_then_a_no_op_resync() {
    for vendor in Vendor::ALL {
        let h = harness(vendor, "").await;
        let first = h.sync(Resync::Auto).await;
        assert_eq!(first.report.users_created, 20, "{vendor:?}");
        assert_eq!(
            h.members(&h.group_id("g-eng", "vpn-eng")),
            ids(1001..=1010),
            "{vendor:?}"
        );
        assert_eq!(
            h.members(&h.group_id("g-ops", "vpn-ops")),
            ids(1011..=1015),
            "{vendor:?}"
        );
        let nested = matches!(
            vendor,
            Vendor::Entra | Vendor::Google | Vendor::JumpCloud | Vendor::Keycloak | Vendor::Authentik
        );
        if nested {
            let state = h.tenant.state();
            let eng = state.owned_group(&h.name, "g-eng").unwrap();
            let ops = state.owned_group(&h.name, "g-ops").unwrap();
            assert!(
                state.is_direct_member(eng, Member::Group(ops)),
                "{vendor:?}: nested group"
            );
        }
        let head = h.tenant.state().seq();
        for resync in [Resync::Auto, Resync::Full] {
            let again = h.sync(resync).await;
            assert!(again.report.is_empty(), "{vendor:?}: {:?}", again.report.changes);
        }
        assert_eq!(
            h.tenant.state().seq(),
            head,
            "{vendor:?}: a no-op resync writes nothing"
        );
        h.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn joiner_mover_rename_leaver_and_group_deletion() {
    for vendor in Vendor::ALL {
        let h = harness(vendor, "").await;
        h.sync(Resync::Auto).await;
        let (eng, sales) = (h.group_id("g-eng", "vpn-eng"), h.group_id("g-sales", "sales"));

        // Joiner.
        h.fake.edit(|d| {
            d.put_user("1021", "new.joiner", true);
            d.join("g-eng", FakeMember::User("1021".into()));
        });
        h.sync(Resync::Auto).await;
        assert_eq!(h.user_active("1021"), Some(true), "{vendor:?}");
        assert!(h.members(&eng).contains("1021"), "{vendor:?}");

        // Mover.
        h.fake.edit(|d| {
            d.leave("g-eng", FakeMember::User("1002".into()));
            d.join("g-sales", FakeMember::User("1002".into()));
        });
        h.sync(Resync::Auto).await;
        assert!(!h.members(&eng).contains("1002"), "{vendor:?}: moved out");
        assert!(h.members(&sales).contains("1002"), "{vendor:?}: moved in");

        // Group rename. Zitadel role keys cannot be renamed: there a new key is a new group.
        if vendor != Vendor::Zitadel {
            h.fake.edit(|d| d.put_group("g-sales", "sales-emea"));
            h.sync(Resync::Auto).await;
            assert_eq!(h.group_name(&sales).as_deref(), Some("sales-emea"), "{vendor:?}");
        }

        // Leaver: deactivated, then deleted (the deletion found by delta or by the full resync).
        h.fake.edit(|d| d.set_active("1003", false));
        h.sync(Resync::Auto).await;
        assert_eq!(h.user_active("1003"), Some(false), "{vendor:?}: deactivated");
        h.fake.edit(|d| d.delete_user("1003"));
        h.sync(Resync::Full).await;
        assert_eq!(h.user_active("1003"), None, "{vendor:?}: deleted");
        assert!(!h.members(&eng).contains("1003"), "{vendor:?}");

        // Group deletion.
        let ops = h.group_id("g-ops", "vpn-ops");
        h.fake.edit(|d| d.delete_group("g-ops"));
        h.sync(Resync::Full).await;
        assert_eq!(h.group_name(&ops), None, "{vendor:?}: group deleted");
        h.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_storm_completes() {
    for vendor in Vendor::ALL {
        let h = harness(vendor, "").await;
        h.fake.set_faults(Faults {
            rate_limited: 3,
            retry_after_seconds: 0,
            ..Faults::default()
        });
        let outcome = h.sync(Resync::Full).await;
        assert_eq!(outcome.report.users_created, 20, "{vendor:?}");
        let limited = h
            .fake
            .take_recorded()
            .iter()
            .filter(|r| r.status == 429 || r.status == 403)
            .count();
        assert_eq!(limited, 3, "{vendor:?}: every rate-limited answer was retried");
        h.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_in_the_middle_of_a_listing_changes_nothing() {
    for vendor in Vendor::ALL {
        for failure in [Failure::ServerError, Failure::DroppedConnection] {
            let h = harness(vendor, "").await;
            h.sync(Resync::Auto).await;
            let head = h.tenant.state().seq();
            // Most of the directory goes away, and the IdP fails on the way.
            h.fake.edit(|d| {
                for n in 1004..=1020 {
                    d.delete_user(&n.to_string());
                }
            });
            h.fake.set_faults(Faults {
                fail_from_request: Some(2),
                failure,
                ..Faults::default()
            });
            let error = h.try_sync(Mode::Apply, Resync::Full).await.unwrap_err();
            assert!(matches!(error, SyncError::Driver(_)), "{vendor:?} {failure:?}: {error}");
            assert_eq!(h.tenant.state().seq(), head, "{vendor:?} {failure:?}: nothing written");
            assert_eq!(h.user_active("1010"), Some(true), "{vendor:?} {failure:?}");
            h.engine.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_answers_within_the_timeout_are_waited_for_and_slower_ones_fail() {
    let h = harness(Vendor::Okta, "").await;
    h.fake.set_faults(Faults {
        delay: Duration::from_millis(200),
        ..Faults::default()
    });
    h.sync(Resync::Full).await;
    h.fake.set_faults(Faults {
        delay: Duration::from_millis(1500),
        ..Faults::default()
    });
    let error = h.try_sync(Mode::Apply, Resync::Full).await.unwrap_err();
    assert!(error.to_string().contains("cannot reach"), "{error}");
    h.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mass_deletion_is_held_until_confirmed() {
    for vendor in Vendor::ALL {
        let h = harness(vendor, "").await;
        h.sync(Resync::Auto).await;
        h.fake.edit(|d| {
            for n in 1011..=1020 {
                d.delete_user(&n.to_string());
            }
        });
        let dry = h.try_sync(Mode::DryRun, Resync::Full).await.unwrap();
        assert_eq!(dry.result, SyncResult::Held, "{vendor:?}: the dry run shows the hold");
        let held = h.try_sync(Mode::Apply, Resync::Full).await.unwrap();
        assert_eq!(held.result, SyncResult::Held, "{vendor:?}");
        assert_eq!(held.report.held.as_ref().unwrap().deletions, 10, "{vendor:?}");
        assert_eq!(
            h.user_active("1015"),
            Some(true),
            "{vendor:?}: nothing deleted while held"
        );
        let confirmed = h.try_sync(Mode::ApplyConfirmingHold, Resync::Full).await.unwrap();
        assert_eq!(confirmed.result, SyncResult::Applied, "{vendor:?}");
        assert_eq!(h.user_active("1015"), None, "{vendor:?}: deleted once confirmed");
        h.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_and_only_group_members() {
    for vendor in [Vendor::Entra, Vendor::Google, Vendor::Keycloak] {
        let h = harness(
            vendor,
            "include_groups = [\"vpn-*\"]\nexclude_groups = [\"vpn-ops\"]\nonly_group_members = true\n",
        )
        .await;
        let outcome = h.sync(Resync::Auto).await;
        assert_eq!(h.group_name("g-eng").as_deref(), Some("vpn-eng"), "{vendor:?}");
        assert_eq!(h.group_name("g-ops"), None, "{vendor:?}: excluded");
        assert_eq!(h.group_name("g-sales"), None, "{vendor:?}: not included");
        // vpn-eng's users, and vpn-ops's through nesting (vpn-ops itself is not synced).
        assert_eq!(outcome.report.users_created, 15, "{vendor:?}");
        assert_eq!(h.user_active("1016"), None, "{vendor:?}: sales only");
        h.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_cursor_survives_a_restart() {
    let h = harness(Vendor::Entra, "").await;
    h.sync(Resync::Auto).await;
    let state = h.cursors.load(&h.name).await.unwrap();
    assert!(
        matches!(state.cursor, Some(idpsync_drivers::Cursor::GraphDelta { .. })),
        "{state:?}"
    );
    h.fake.edit(|d| d.put_user("1030", "late.joiner", true));
    h.fake.take_recorded();
    // A new driver (as after a restart) continues from the stored delta link.
    let config = h.driver.config().clone();
    let restarted = Driver::new(config, fast_retries()).unwrap();
    let outcome = sync_once(&restarted, &h.tenant, &h.cursors, Mode::Apply, Resync::Auto)
        .await
        .unwrap();
    assert_eq!(outcome.report.users_created, 1);
    assert!(
        h.fake
            .take_recorded()
            .iter()
            .any(|r| r.query.iter().any(|(key, _)| key == "$deltatoken")),
        "the delta link was followed"
    );
    h.engine.shutdown().await;
}

/// The same integration under another name, so that two can be scheduled side by side.
/// With `only_group_members`, a run after the first is incremental and follows membership: a
/// user added to the synced group comes in (read by id where the delta names only the
/// membership: Graph's), one removed from it leaves, and one changed outside scope stays out.
#[tokio::test(flavor = "multi_thread")]
async fn incremental_runs_follow_membership_under_only_group_members() {
    for vendor in [Vendor::Entra, Vendor::Okta, Vendor::Authentik, Vendor::Auth0] {
        // Users created an hour ago: a search by change time (Auth0's) lists only those changed.
        let mut directory = seed();
        directory.backdate_users(Duration::from_secs(3600));
        let h = harness_with(
            vendor,
            "include_groups = [\"vpn-eng\"]\nonly_group_members = true\n",
            directory,
        )
        .await;
        let eng = h.group_id("g-eng", "vpn-eng");
        h.sync(Resync::Auto).await;
        assert_eq!(h.user_active("1016"), None, "{vendor:?}: sales only");
        assert_eq!(h.user_active("1004"), Some(true), "{vendor:?}");
        h.fake.edit(|d| {
            d.join("g-eng", FakeMember::User("1016".into()));
            d.leave("g-eng", FakeMember::User("1004".into()));
            d.set_active("1017", false);
        });
        h.fake.take_recorded();
        let outcome = h.sync(Resync::Auto).await;
        assert_eq!(
            outcome.scope,
            idpsync_engine::reconcile::ListingScope::Incremental,
            "{vendor:?}"
        );
        let members = h.members(&eng);
        assert!(members.contains("1016"), "{vendor:?}: {:?}", outcome.report.changes);
        assert_eq!(h.user_active("1016"), Some(true), "{vendor:?}");
        assert!(!members.contains("1004"), "{vendor:?}");
        assert_eq!(h.user_active("1004"), None, "{vendor:?}: out of scope, removed");
        assert_eq!(h.user_active("1017"), None, "{vendor:?}: changed, but outside scope");
        assert_eq!(h.user_active("1005"), Some(true), "{vendor:?}: the others stay");
        if vendor == Vendor::Entra {
            let recorded = h.fake.take_recorded();
            assert!(
                recorded.iter().any(|r| r.path == "/v1.0/users"
                    && r.query
                        .iter()
                        .any(|(key, value)| key == "$filter" && value.contains("'1016'"))),
                "the joiner was read by id"
            );
        }
        // Back in: the same user returns at the next incremental run.
        h.fake.edit(|d| d.join("g-eng", FakeMember::User("1004".into())));
        h.sync(Resync::Auto).await;
        assert_eq!(h.user_active("1004"), Some(true), "{vendor:?}");
        assert!(h.members(&eng).contains("1004"), "{vendor:?}");
        if matches!(vendor, Vendor::Entra | Vendor::Authentik) {
            // 1011 is in vpn-ops, nested in vpn-eng and not synced itself; taken out of
            // vpn-eng directly, it is still in through vpn-ops, and stays.
            h.fake.edit(|d| d.join("g-eng", FakeMember::User("1011".into())));
            h.sync(Resync::Auto).await;
            assert!(h.members(&eng).contains("1011"), "{vendor:?}");
            h.fake.edit(|d| d.leave("g-eng", FakeMember::User("1011".into())));
            let outcome = h.sync(Resync::Auto).await;
            assert!(!h.members(&eng).contains("1011"), "{vendor:?}");
            assert_eq!(
                h.user_active("1011"),
                Some(true),
                "{vendor:?}: still in through vpn-ops: {:?}",
                outcome.report.changes
            );
        }
        h.engine.shutdown().await;
    }
}

fn renamed(config: &IntegrationConfig, name: &str) -> IntegrationConfig {
    IntegrationConfig {
        name: IntegrationName::new(name).unwrap(),
        ..config.clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scheduler_runs_each_integration_and_reports_its_status() {
    use idpsync_drivers::scheduler::{Scheduled, Scheduler};
    let h = harness(Vendor::JumpCloud, "interval = \"1s\"\n").await;
    let broken = harness(Vendor::Okta, "interval = \"1s\"\n").await;
    broken.fake.set_faults(Faults {
        fail_from_request: Some(1),
        ..Faults::default()
    });
    let scheduler = Scheduler::start(vec![
        Scheduled {
            tenant: Arc::clone(&h.tenant),
            driver: Arc::new(Driver::new(h.driver.config().clone(), fast_retries()).unwrap()),
            cursors: h.cursors.clone(),
        },
        Scheduled {
            tenant: Arc::clone(&broken.tenant),
            driver: Arc::new(Driver::new(renamed(broken.driver.config(), "broken"), fast_retries()).unwrap()),
            cursors: broken.cursors.clone(),
        },
    ]);
    // The first runs start within a tenth of the interval.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let statuses = loop {
        let statuses = scheduler.status();
        if statuses.iter().all(|status| status.runs >= 1) || tokio::time::Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    scheduler.shutdown().await;
    let by_provider = |provider: &str| statuses.iter().find(|status| status.provider == provider).unwrap();
    let good = by_provider("jumpcloud");
    assert_eq!(good.last_result, Some("applied"), "{good:?}");
    assert_eq!(good.last_counts.unwrap().listed_users, 20);
    let bad = by_provider("okta");
    assert_eq!(bad.last_result, Some("failed"), "{bad:?}");
    assert!(
        bad.last_error.as_deref().unwrap().contains("unexpected HTTP 503"),
        "{bad:?}"
    );
    assert_eq!(h.user_active("1001"), Some(true));
    assert_eq!(broken.user_active("1001"), None, "a failed run applies nothing");
    h.engine.shutdown().await;
    broken.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_is_renewed_once() {
    for vendor in [Vendor::Entra, Vendor::Google, Vendor::Keycloak, Vendor::Auth0] {
        let h = harness(vendor, "").await;
        h.sync(Resync::Full).await;
        h.fake.revoke_tokens();
        h.fake.take_recorded();
        h.sync(Resync::Full).await;
        let statuses: Vec<u16> = h.fake.take_recorded().iter().map(|r| r.status).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == 401).count(),
            1,
            "{vendor:?}: {statuses:?}"
        );
        h.engine.shutdown().await;
    }
}

/// Hardening issue, must-fix 9: a driver, its configuration, its credentials and its token
/// cache must never print a secret or a token in a `Debug` print (logs, panics, error reports).
#[tokio::test(flavor = "multi_thread")]
async fn a_driver_s_debug_shows_no_secret_nor_token() {
    use idpsync_drivers::fake::credentials::{API_TOKEN, CLIENT_SECRET};
    for vendor in Vendor::ALL {
        let h = harness(vendor, "").await;
        // A run fills the token cache of the OAuth vendors.
        h.sync(Resync::Full).await;
        let printed = format!("{:?}", h.driver);
        for secret in [API_TOKEN, CLIENT_SECRET, "fake-token-", "PRIVATE KEY"] {
            assert!(!printed.contains(secret), "{vendor:?} shows {secret:?}: {printed}");
        }
        assert!(
            printed.contains("Sensitive") || printed.contains("Secret(…)"),
            "{vendor:?}: {printed}"
        );
        h.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_of_another_idp_is_not_used() {
    let h = harness(Vendor::Okta, "").await;
    h.sync(Resync::Auto).await;
    // The same integration, now pointed at another IdP: its first run must list everything.
    let other = FakeIdp::start(Vendor::Authentik, Directory::default(), false).await;
    let config = IntegrationConfig::from_toml(&format!("name = \"it\"\n{}", other.integration_toml())).unwrap();
    let driver = Driver::new(config, fast_retries()).unwrap();
    let outcome = sync_once(&driver, &h.tenant, &h.cursors, Mode::DryRun, Resync::Auto)
        .await
        .unwrap();
    assert_eq!(outcome.scope, idpsync_engine::reconcile::ListingScope::Complete);
    // An empty IdP would delete everyone; one listing is not witness enough.
    assert_eq!(outcome.result, SyncResult::Planned);
    assert_eq!(outcome.report.users_deleted, 0);
    let pending_users = outcome.report.pending.iter().filter(|line| line.kind == "user").count();
    assert_eq!(pending_users, 20);
    h.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_listing_is_no_witness_to_an_absence() {
    for vendor in Vendor::ALL {
        // The integration's default: two consecutive complete listings.
        let h = start(vendor, "", seed()).await;
        h.sync(Resync::Auto).await;
        h.fake.edit(|d| d.delete_user("1020"));
        h.fake.set_faults(Faults {
            fail_from_request: Some(2),
            failure: Failure::ServerError,
            ..Faults::default()
        });
        let error = h.try_sync(Mode::Apply, Resync::Full).await.unwrap_err();
        assert!(matches!(error, SyncError::Driver(_)), "{vendor:?}: {error}");
        h.fake.set_faults(Faults::default());

        let first = h.sync(Resync::Full).await;
        assert_eq!(
            h.user_active("1020"),
            Some(true),
            "{vendor:?}: the failed listing did not count"
        );
        assert!(
            first
                .report
                .pending
                .iter()
                .any(|line| line.kind == "user" && line.listings == 1),
            "{vendor:?}: {:?}",
            first.report.pending
        );
        let second = h.sync(Resync::Full).await;
        assert_eq!(second.report.users_deleted, 1, "{vendor:?}: {:?}", second.report);
        assert_eq!(h.user_active("1020"), None, "{vendor:?}");
        h.engine.shutdown().await;
    }
}

/// An Auth0 tenant larger than `/users` lists (1,000) is listed in full from a users-export
/// job: created, polled through pending and processing, its gzip file fetched from another host
/// without the API's token. A small tenant never asks for one.
#[tokio::test(flavor = "multi_thread")]
async fn an_auth0_tenant_larger_than_its_users_api_is_listed_by_an_export_job() {
    let h = harness(Vendor::Auth0, "").await;
    h.sync(Resync::Auto).await;
    let asked_for_jobs =
        |recorded: &[idpsync_drivers::fake::Recorded]| recorded.iter().any(|r| r.path.contains("/jobs"));
    assert!(!asked_for_jobs(&h.fake.take_recorded()), "no job for 20 users");
    h.fake.edit(|d| {
        d.set_active("1003", false);
        for n in 2000..4480 {
            d.put_user(&n.to_string(), &format!("bulk{n}.user"), true);
        }
    });
    let outcome = h.sync(Resync::Full).await;
    assert_eq!(outcome.listed.users, 2500);
    assert_eq!(h.user_active("4479"), Some(true));
    assert_eq!(h.user_active("1003"), Some(false));
    let recorded = h.fake.take_recorded();
    let polls = recorded
        .iter()
        .filter(|r| r.path.starts_with("/api/v2/jobs/job_"))
        .count();
    assert_eq!(polls, 3, "pending, processing, completed");
    let file = recorded
        .iter()
        .find(|r| r.path.starts_with("/exports/"))
        .expect("the file fetched");
    assert_eq!(file.status, 200, "fetched without the API's credentials");
    assert!(file.headers.get("authorization").is_none());
    h.engine.shutdown().await;
}

/// An export job that fails fails the run: nothing is applied, no one is deactivated.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_auth0_export_job_fails_the_run_and_deactivates_no_one() {
    let h = harness(Vendor::Auth0, "").await;
    h.sync(Resync::Auto).await;
    let head = h.tenant.state().seq();
    h.fake.edit(|d| {
        d.delete_user("1004");
        for n in 2000..3100 {
            d.put_user(&n.to_string(), &format!("bulk{n}.user"), true);
        }
        d.fail_export_jobs();
    });
    let error = h.try_sync(Mode::Apply, Resync::Full).await.unwrap_err();
    assert!(error.to_string().contains("export job job_1 ended failed"), "{error}");
    assert_eq!(h.tenant.state().seq(), head, "nothing applied");
    assert_eq!(h.user_active("1004"), Some(true));
    h.engine.shutdown().await;
}

/// For a vendor that pages by offset or page number: how many users fill more than two of its
/// pages, the path of its user listing, and that of the member listing of `g-all` (where
/// members are paged apart from their group).
fn paged(vendor: Vendor) -> (u32, &'static str, Option<&'static str>) {
    match vendor {
        Vendor::Keycloak => (
            2100,
            "/admin/realms/acme/users",
            Some("/admin/realms/acme/groups/g-all/members"),
        ),
        Vendor::JumpCloud => (250, "/systemusers", Some("/v2/usergroups/g-all/members")),
        Vendor::Zitadel => (
            2100,
            "/v2/users",
            Some("/zitadel.authorization.v2.AuthorizationService/ListAuthorizations"),
        ),
        Vendor::Auth0 => (250, "/users", None),
        Vendor::Authentik => (250, "/core/users/", None),
        other => unreachable!("{other:?} pages by cursor"),
    }
}

/// `users` users (1001 on), all of them in `everyone` (`g-all`).
fn crowd(users: u32) -> Directory {
    let mut directory = Directory::default();
    directory.put_group("g-all", "everyone");
    for n in 1001..=1000 + users {
        directory.put_user(&n.to_string(), &format!("user{n}.smith"), true);
        directory.join("g-all", FakeMember::User(n.to_string()));
    }
    directory
}

const OFFSET_PAGED: [Vendor; 3] = [Vendor::Keycloak, Vendor::JumpCloud, Vendor::Zitadel];

#[tokio::test(flavor = "multi_thread")]
async fn an_object_deleted_during_an_offset_listing_skips_no_other() {
    for vendor in OFFSET_PAGED {
        let (users, users_path, members_path) = paged(vendor);
        let h = harness_with(vendor, "", crowd(users)).await;
        assert_eq!(h.sync(Resync::Full).await.report.users_created, users, "{vendor:?}");
        // Once the first page of users (and of members) is read, an object on it goes away:
        // everything after it moves one place earlier. So does the last user, not read yet.
        let last = (1000 + users).to_string();
        let gone = last.clone();
        h.fake.after_page(users_path, 1, move |d| {
            d.delete_user("1010");
            d.delete_user(&gone);
        });
        h.fake.after_page(members_path.unwrap(), 1, |d| {
            d.leave("g-all", FakeMember::User("1020".into()))
        });
        let outcome = h.sync(Resync::Full).await;
        let report = &outcome.report;
        assert_eq!(h.user_active(&last), None, "{vendor:?}: the deleted user is gone");
        assert_eq!(
            (report.users_deleted, report.users_deactivated),
            (1, 0),
            "{vendor:?}: {:?}",
            report.changes
        );
        let active = (1001..=1000 + users)
            .filter(|n| h.user_active(&n.to_string()) == Some(true))
            .count();
        // 1010 was read before it was deleted: the next run removes it.
        assert_eq!(active, users as usize - 1, "{vendor:?}: every other user stays");
        // 1010 was gone when members were listed; 1020 left after the first page of members
        // was read: it is still listed as a member.
        let mut expected = ids(1001..=999 + users);
        expected.remove("1010");
        let everyone = h.group_id("g-all", "everyone");
        assert_eq!(h.members(&everyone), expected, "{vendor:?}: no member skipped");
        let next = h.sync(Resync::Full).await;
        assert_eq!(
            (next.report.users_deleted, next.report.users_deactivated),
            (1, 0),
            "{vendor:?}: {:?}",
            next.report.changes
        );
        assert_eq!(h.user_active("1010"), None, "{vendor:?}");
        expected.remove("1020");
        assert_eq!(h.members(&everyone), expected, "{vendor:?}");
        h.engine.shutdown().await;
    }
}

/// Issue 17: a listing that shifted beyond the overlap failed the run, and the change waited
/// for the next one. The run reads the IdP again, and applies what holds still.
#[tokio::test(flavor = "multi_thread")]
async fn objects_deleted_during_an_offset_listing_beyond_the_overlap_make_the_run_read_again() {
    for vendor in OFFSET_PAGED {
        let (users, users_path, members_path) = paged(vendor);
        for path in [users_path, members_path.unwrap()] {
            let h = harness_with(vendor, "", crowd(users)).await;
            h.sync(Resync::Full).await;
            h.fake.after_page(path, 1, |d| {
                for n in 1005..=1007 {
                    d.delete_user(&n.to_string());
                }
            });
            let outcome = h.sync(Resync::Full).await;
            assert!(
                outcome.warnings.iter().any(|w| w.contains("shifted while it was read")),
                "{vendor:?} {path}: {:?}",
                outcome.warnings
            );
            assert_eq!(h.user_active("1005"), None, "{vendor:?} {path}");
            assert_eq!(
                h.user_active(&(1000 + users).to_string()),
                Some(true),
                "{vendor:?} {path}"
            );
            h.engine.shutdown().await;
        }
    }
}

/// A sync that must fail with `needle` in its error and leave the log at `head`.
async fn fails_and_writes_nothing(h: &Harness, head: Seq, needle: &str, label: &str) {
    let error = h.try_sync(Mode::Apply, Resync::Full).await.unwrap_err();
    assert!(error.to_string().contains(needle), "{label}: {error}");
    assert_eq!(h.tenant.state().seq(), head, "{label}: nothing written");
}

/// Issue 17: a page-number listing whose count changed failed the run; it is read again.
#[tokio::test(flavor = "multi_thread")]
async fn an_object_deleted_during_a_page_number_listing_is_read_again_and_applied() {
    for vendor in [Vendor::Auth0, Vendor::Authentik] {
        let (users, users_path, _) = paged(vendor);
        let h = harness_with(vendor, "", crowd(users)).await;
        assert_eq!(h.sync(Resync::Full).await.report.users_created, users, "{vendor:?}");
        h.fake.after_page(users_path, 1, |d| d.delete_user("1010"));
        let outcome = h.sync(Resync::Full).await;
        assert!(
            outcome.warnings.iter().any(|w| w.contains("shifted while it was read")),
            "{vendor:?}: {:?}",
            outcome.warnings
        );
        assert_eq!(h.user_active("1010"), None, "{vendor:?}");
        assert_eq!(
            (outcome.report.users_deleted, outcome.report.users_deactivated),
            (1, 0),
            "{vendor:?}: {:?}",
            outcome.report.changes
        );
        h.engine.shutdown().await;
    }
}

/// A listing that shifts on every try fails the run, and nothing is applied: a shifted
/// listing is never taken as complete.
#[tokio::test(flavor = "multi_thread")]
async fn a_listing_that_never_holds_still_fails_and_writes_nothing() {
    for vendor in [Vendor::Auth0, Vendor::JumpCloud] {
        let (users, users_path, _) = paged(vendor);
        let h = harness_with(vendor, "", crowd(users)).await;
        h.sync(Resync::Full).await;
        let head = h.tenant.state().seq();
        // Every page of users answered deletes three more.
        for page in 1..=12u32 {
            let first = 1000 + 3 * page;
            h.fake.after_page(users_path, u64::from(page), move |d| {
                for n in first..first + 3 {
                    d.delete_user(&n.to_string());
                }
            });
        }
        let label = format!("{vendor:?}");
        fails_and_writes_nothing(&h, head, "on each of 3 tries", &label).await;
        assert_eq!(h.user_active("1004"), Some(true), "{vendor:?}");
        h.engine.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offset_listings_overlap_by_two_and_stay_near_the_fewest_requests() {
    for vendor in OFFSET_PAGED {
        let (users, users_path, _) = paged(vendor);
        let h = harness_with(vendor, "", crowd(users)).await;
        h.sync(Resync::Full).await;
        let full = h.fake.vendor().base_path().to_owned() + users_path;
        let requests = h.fake.take_recorded().into_iter().filter(|r| r.path == full).count();
        let page_size = if vendor == Vendor::JumpCloud { 100 } else { 1000 };
        // Pages of `page_size` that each re-read two items.
        let expected = (users as usize - 2).div_ceil(page_size - 2);
        assert_eq!(requests, expected, "{vendor:?}");
        assert!(
            requests as f64 <= (users as f64 / page_size as f64).ceil() * 1.05 + 1.0,
            "{vendor:?}"
        );
        h.engine.shutdown().await;
    }
}

/// Whether a recorded request asked for the members of the fake group `fake_id`.
fn asked_members_of(recorded: &[idpsync_drivers::fake::Recorded], fake_id: &str) -> bool {
    recorded.iter().any(|r| {
        let names_group = r.path.contains(&format!("/{fake_id}/")) || r.path.contains(&format!("/rol_{fake_id}/"));
        names_group && (r.path.ends_with("/members") || r.path.ends_with("/users"))
    })
}

/// Issue 17: every group's member list was fetched before the group filter was applied, one
/// request at a time: on a tenant of 20,000 groups, 20,000 requests for a filter keeping a few.
#[tokio::test(flavor = "multi_thread")]
async fn members_are_fetched_for_the_groups_the_filter_keeps_only() {
    for vendor in [
        Vendor::Google,
        Vendor::Okta,
        Vendor::JumpCloud,
        Vendor::Keycloak,
        Vendor::Auth0,
    ] {
        let h = harness(vendor, "include_groups = [\"vpn-eng\"]\n").await;
        let outcome = h.sync(Resync::Full).await;
        let recorded = h.fake.take_recorded();
        assert!(asked_members_of(&recorded, "g-eng"), "{vendor:?}");
        assert!(
            !asked_members_of(&recorded, "g-sales"),
            "{vendor:?}: sales is not included"
        );
        assert!(
            !asked_members_of(&recorded, "g-ops"),
            "{vendor:?}: vpn-ops is not included"
        );
        assert_eq!(
            outcome.report.users_created, 20,
            "{vendor:?}: every user without only_group_members"
        );
        let eng = h.group_id("g-eng", "vpn-eng");
        assert_eq!(h.members(&eng), ids(1001..=1010), "{vendor:?}");
        assert_eq!(h.group_name(&h.group_id("g-sales", "sales")), None, "{vendor:?}");
        h.engine.shutdown().await;
    }
}

/// With `only_group_members`, the groups nested in a kept group are fetched too (their users
/// are in scope through the nesting), and still nothing else.
#[tokio::test(flavor = "multi_thread")]
async fn nested_groups_of_kept_groups_are_fetched_for_only_group_members() {
    for vendor in [Vendor::Google, Vendor::JumpCloud, Vendor::Keycloak] {
        let h = harness(vendor, "include_groups = [\"vpn-eng\"]\nonly_group_members = true\n").await;
        let outcome = h.sync(Resync::Full).await;
        let recorded = h.fake.take_recorded();
        assert!(asked_members_of(&recorded, "g-ops"), "{vendor:?}: nested in vpn-eng");
        assert!(!asked_members_of(&recorded, "g-sales"), "{vendor:?}");
        assert_eq!(outcome.report.users_created, 15, "{vendor:?}: vpn-eng's and vpn-ops's");
        h.engine.shutdown().await;
    }
}

/// Eight groups of two users each, named `team-1` to `team-8`.
fn teams() -> Directory {
    let mut directory = Directory::default();
    for team in 1..=8 {
        let id = format!("g-team{team}");
        directory.put_group(&id, &format!("team-{team}"));
        for n in 0..2 {
            let user = (1000 + team * 10 + n).to_string();
            directory.put_user(&user, &format!("user{user}.smith"), true);
            directory.join(&id, FakeMember::User(user));
        }
    }
    directory
}

/// Issue 17: member lists were fetched one after another, so a run took one round trip per
/// group. They are fetched `member_concurrency` at a time, never more.
#[tokio::test(flavor = "multi_thread")]
async fn member_lists_are_fetched_concurrently_within_the_limit() {
    for vendor in [Vendor::Google, Vendor::Okta, Vendor::Keycloak] {
        let h = harness_with(vendor, "member_concurrency = 3\n", teams()).await;
        h.fake.set_faults(Faults {
            delay: Duration::from_millis(40),
            ..Faults::default()
        });
        let outcome = h.sync(Resync::Full).await;
        assert_eq!(outcome.report.memberships_added, 16, "{vendor:?}");
        assert_eq!(h.fake.most_in_flight(), 3, "{vendor:?}: three at once, never four");
        h.engine.shutdown().await;
    }
}

/// Issue 17: with several requests in flight, a vendor's quota was only noticed once it
/// refused them (a 429 storm). Okta and Auth0 say what is left of the window on every
/// answer: the run waits for the window to reset before it is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_s_quota_headers_pace_the_run_before_it_is_refused() {
    for vendor in [Vendor::Okta, Vendor::Auth0] {
        let h = harness_with(vendor, "member_concurrency = 4\n", teams()).await;
        h.fake.set_faults(Faults {
            quota: Some(idpsync_drivers::fake::Quota {
                limit: 6,
                window_seconds: 1,
            }),
            ..Faults::default()
        });
        let outcome = h.sync(Resync::Full).await;
        assert_eq!(outcome.report.memberships_added, 16, "{vendor:?}");
        let refused = h.fake.take_recorded().iter().filter(|r| r.status == 429).count();
        assert_eq!(refused, 0, "{vendor:?}: paced, never refused");
        assert_eq!(outcome.rate_limited, 0, "{vendor:?}");
        h.engine.shutdown().await;
    }
}

/// Vendors without quota headers refuse first; the refusal's wait then holds back every
/// request of the run, so one refusal does not become one per request in flight.
#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_holds_back_every_request_in_flight() {
    let h = harness_with(Vendor::Keycloak, "member_concurrency = 4\n", teams()).await;
    h.fake.set_faults(Faults {
        rate_limited: 1,
        retry_after_seconds: 1,
        delay: Duration::from_millis(20),
        ..Faults::default()
    });
    let outcome = h.sync(Resync::Full).await;
    assert_eq!(outcome.report.memberships_added, 16);
    assert_eq!(outcome.rate_limited, 1);
    h.engine.shutdown().await;
}

/// Issue 17: Graph answers a delta link it no longer knows with 400 `syncStateNotFound`, which
/// failed every run until the full resync was due; and its delta functions take no `$top`.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_graph_delta_link_lists_everything_and_deactivates_no_one() {
    let h = harness(Vendor::Entra, "").await;
    h.sync(Resync::Auto).await;
    h.fake.edit(|d| {
        d.put_user("1030", "late.joiner", true);
        d.expire_delta_tokens();
    });
    let outcome = h.sync(Resync::Auto).await;
    assert_eq!(outcome.scope, idpsync_engine::reconcile::ListingScope::Complete);
    assert!(
        outcome.warnings.iter().any(|w| w.contains("syncStateNotFound")),
        "{:?}",
        outcome.warnings
    );
    assert_eq!(outcome.report.users_created, 1);
    assert_eq!(outcome.report.users_deactivated, 0);
    assert_eq!(outcome.report.users_deleted, 0);
    assert_eq!(h.user_active("1001"), Some(true));
    let recorded = h.fake.take_recorded();
    let refused: Vec<_> = recorded.iter().filter(|r| r.status == 400).collect();
    assert_eq!(refused.len(), 1, "the expired delta link only");
    assert!(refused[0].query.iter().any(|(key, _)| key == "$deltatoken"));
    assert!(
        recorded.iter().all(|r| r.query.iter().all(|(key, _)| key != "$top")),
        "no `$top` on delta queries"
    );
    // The next run goes on incrementally from the new delta link.
    h.fake.edit(|d| d.put_user("1031", "later.joiner", true));
    let outcome = h.sync(Resync::Auto).await;
    assert_eq!(outcome.scope, idpsync_engine::reconcile::ListingScope::Incremental);
    assert_eq!(outcome.report.users_created, 1);
    h.engine.shutdown().await;
}

/// Issue 17: Keycloak 22 and older have no `/groups/{id}/children`; the 404 failed every run.
/// Their `GET /groups` brings the tree inline, which is read instead.
#[tokio::test(flavor = "multi_thread")]
async fn keycloak_22_s_inline_group_tree_is_read() {
    let mut directory = seed();
    directory.as_keycloak_22();
    let h = harness_with(Vendor::Keycloak, "", directory).await;
    h.sync(Resync::Full).await;
    assert_eq!(h.group_name("g-ops").as_deref(), Some("vpn-ops"), "the nested group");
    assert_eq!(h.members("g-ops"), ids(1011..=1015));
    let children = h
        .fake
        .take_recorded()
        .iter()
        .filter(|r| r.path.ends_with("/children"))
        .count();
    assert!(children <= 1, "one 404 tells the version: {children}");
    h.engine.shutdown().await;
}

/// Issue 17: Zitadel's authorizations are read from the v2 AuthorizationService; an instance
/// older than it (before v4) answers 404 there, and the deprecated v2beta listing is read
/// instead, with a warning, to the same groups.
#[tokio::test(flavor = "multi_thread")]
async fn zitadel_authorizations_come_from_v2_and_from_v2beta_before_v4() {
    for before_v4 in [false, true] {
        let mut directory = seed();
        if before_v4 {
            directory.as_zitadel_before_v4();
        }
        let h = harness_with(Vendor::Zitadel, "", directory).await;
        let outcome = h.sync(Resync::Full).await;
        let eng = h.group_id("g-eng", "vpn-eng");
        assert_eq!(
            h.group_name(&eng).as_deref(),
            Some("vpn:vpn-eng"),
            "before v4: {before_v4}"
        );
        assert_eq!(h.members(&eng), ids(1001..=1010), "before v4: {before_v4}");
        let paths: Vec<String> = h.fake.take_recorded().into_iter().map(|r| r.path).collect();
        let v2 = "/zitadel.authorization.v2.AuthorizationService/ListAuthorizations";
        assert!(paths.iter().any(|path| path == v2), "v2 is asked first");
        let v2beta = paths.iter().any(|path| path == "/v2beta/authorizations/search");
        assert_eq!(v2beta, before_v4, "v2beta only where v2 is missing");
        let warned = outcome.warnings.iter().any(|warning| warning.contains("deprecated"));
        assert_eq!(warned, before_v4, "{:?}", outcome.warnings);
        h.engine.shutdown().await;
    }
}

/// Issue 17: JumpCloud was listed by `skip` in its unspecified order, so users changed while
/// the listing was read could move across the pages and one be skipped. Sorted by `_id`, a
/// change moves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn jumpcloud_users_changed_during_the_listing_move_across_no_page() {
    let (users, users_path, _) = paged(Vendor::JumpCloud);
    let h = harness_with(Vendor::JumpCloud, "", crowd(users)).await;
    h.sync(Resync::Full).await;
    // Once the first page is read, users of the later pages change (and would come first in
    // the unspecified order).
    h.fake.after_page(users_path, 1, |d| {
        for n in 1200..=1210 {
            d.set_active(&n.to_string(), false);
        }
    });
    let outcome = h.sync(Resync::Full).await;
    assert_eq!(outcome.report.users_deactivated, 11, "{:?}", outcome.report.changes);
    assert_eq!(outcome.report.users_deleted, 0);
    let recorded = h.fake.take_recorded();
    assert!(
        recorded
            .iter()
            .filter(|r| r.path.ends_with(users_path))
            .all(|r| r.query.iter().any(|(key, value)| key == "sort" && value == "_id")),
        "every page of users asked in `_id` order"
    );
    h.engine.shutdown().await;
}

/// A user deleted outright (not deactivated first) loses its access at the next poll, by
/// delta (Graph's `@removed`) or, where every run of the vendor is a full listing, once the
/// listing is witness enough (`absent_listings = 1` here). Okta, Auth0 and authentik read
/// their deletion feeds: `a_user_deleted_in_the_idp_s_feed_loses_access_at_the_next_poll`.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_user_loses_access_at_the_next_poll() {
    for vendor in [
        Vendor::Entra,
        Vendor::Google,
        Vendor::JumpCloud,
        Vendor::Keycloak,
        Vendor::Zitadel,
    ] {
        let h = harness(vendor, "").await;
        h.sync(Resync::Auto).await;
        let eng = h.group_id("g-eng", "vpn-eng");
        assert!(h.members(&eng).contains("1004"), "{vendor:?}");
        h.fake.edit(|d| d.delete_user("1004"));
        let outcome = h.sync(Resync::Auto).await;
        assert_eq!(h.user_active("1004"), None, "{vendor:?}: {:?}", outcome.report.changes);
        assert!(!h.members(&eng).contains("1004"), "{vendor:?}");
        h.engine.shutdown().await;
    }
}

/// The vendors whose incremental runs read a deletion feed.
const FEEDS: [Vendor; 3] = [Vendor::Okta, Vendor::Auth0, Vendor::Authentik];

/// A user deleted in Okta, Auth0 or authentik is removed, and its memberships end, at the
/// next incremental poll: the deletion comes from the vendor's feed, a positive signal, so the
/// default absence rules (two complete listings) do not hold it back. The first incremental
/// run finds the feed from the cursor's moment (Auth0: by a search, then by checkpoint).
#[tokio::test(flavor = "multi_thread")]
async fn a_user_deleted_in_the_idp_s_feed_loses_access_at_the_next_poll() {
    for vendor in FEEDS {
        let h = start(vendor, "", seed()).await;
        h.sync(Resync::Auto).await;
        let eng = h.group_id("g-eng", "vpn-eng");
        for user in ["1004", "1005"] {
            assert!(h.members(&eng).contains(user), "{vendor:?}");
            h.fake.edit(|d| d.delete_user(user));
            let outcome = h.sync(Resync::Auto).await;
            assert_eq!(
                outcome.scope,
                idpsync_engine::reconcile::ListingScope::Incremental,
                "{vendor:?}"
            );
            assert_eq!(
                h.user_active(user),
                None,
                "{vendor:?} {user}: {:?}",
                outcome.report.changes
            );
            assert!(!h.members(&eng).contains(user), "{vendor:?} {user}");
        }
        assert_eq!(h.user_active("1006"), Some(true), "{vendor:?}: the others stay");
        if vendor == Vendor::Auth0 {
            let state = h.cursors.load(&h.name).await.unwrap();
            assert!(
                matches!(state.cursor, Some(idpsync_drivers::Cursor::Since { feed: Some(_), .. })),
                "the log checkpoint is kept: {state:?}"
            );
            assert!(
                h.fake
                    .take_recorded()
                    .iter()
                    .any(|r| r.path == "/api/v2/logs" && r.query.iter().any(|(key, _)| key == "from")),
                "the second poll reads from the checkpoint"
            );
        }
        h.engine.shutdown().await;
    }
}

/// A group deleted in Okta or authentik (whose incremental listings cannot tell a group is
/// gone) is removed at the next poll, from the vendor's feed, and its members' access with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_group_deleted_in_the_idp_s_feed_is_removed_at_the_next_poll() {
    for vendor in [Vendor::Okta, Vendor::Authentik] {
        let h = start(vendor, "", seed()).await;
        h.sync(Resync::Auto).await;
        assert!(h.group_name("g-sales").is_some(), "{vendor:?}");
        h.fake.edit(|d| d.delete_group("g-sales"));
        let outcome = h.sync(Resync::Auto).await;
        assert_eq!(
            outcome.scope,
            idpsync_engine::reconcile::ListingScope::Incremental,
            "{vendor:?}"
        );
        assert_eq!(
            h.group_name("g-sales"),
            None,
            "{vendor:?}: {:?}",
            outcome.report.changes
        );
        h.engine.shutdown().await;
    }
}

/// A feed that cannot be read, or that answers in another shape than the vendor's, fails the
/// run: nothing is applied (nobody is deactivated, nothing else changes) and the cursor stays.
#[tokio::test(flavor = "multi_thread")]
async fn a_feed_that_fails_or_answers_garbage_fails_the_run() {
    for vendor in FEEDS {
        let h = start(vendor, "", seed()).await;
        h.sync(Resync::Auto).await;
        let cursor = h.cursors.load(&h.name).await.unwrap();
        let head = h.tenant.state().seq();
        h.fake.edit(|d| {
            d.delete_user("1004");
            d.put_user("1030", "late.joiner", true);
        });
        // The feed is an incremental run's first request.
        h.fake.set_faults(Faults {
            fail_from_request: Some(1),
            ..Faults::default()
        });
        h.try_sync(Mode::Apply, Resync::Auto).await.unwrap_err();
        h.fake.set_faults(Faults::default());
        h.fake.edit(Directory::garble_feeds);
        let error = h.try_sync(Mode::Apply, Resync::Auto).await.unwrap_err();
        assert!(error.to_string().contains("unexpected response"), "{vendor:?}: {error}");
        assert_eq!(h.tenant.state().seq(), head, "{vendor:?}: nothing applied");
        assert_eq!(h.user_active("1004"), Some(true), "{vendor:?}");
        assert_eq!(
            h.cursors.load(&h.name).await.unwrap(),
            cursor,
            "{vendor:?}: the cursor stays"
        );
        h.engine.shutdown().await;
    }
}

/// A user Okta's System Log says was deactivated, which the "changed since" search does not
/// list yet (Okta's search index lags its writes), is read again by id in the same run.
#[tokio::test(flavor = "multi_thread")]
async fn an_okta_user_the_log_deactivated_is_read_again_when_the_search_lags() {
    let h = start(Vendor::Okta, "", seed()).await;
    h.sync(Resync::Auto).await;
    h.fake.edit(|d| {
        d.set_active("1007", false);
        d.lag_okta_index("1007");
    });
    h.fake.take_recorded();
    h.sync(Resync::Auto).await;
    assert_eq!(h.user_active("1007"), Some(false), "deactivated, not deleted");
    assert!(
        h.fake.take_recorded().iter().any(|r| r
            .query
            .iter()
            .any(|(key, value)| key == "search" && value == "id eq \"1007\"")),
        "read again by id"
    );
    h.engine.shutdown().await;
}

/// An integration upgraded to a version that reads a deletion feed, without the feed's
/// permission (Okta's API token owner without log access, Auth0's `read:logs`, authentik's
/// "Can view Event"): the feed's 403 turns the feed off for the run, with a warning, and the
/// run goes on. The refusal deactivates no one; a deletion takes effect at the full run, by
/// absence; once the permission is granted, the next poll reads the feed again.
#[tokio::test(flavor = "multi_thread")]
async fn a_feed_refused_for_want_of_a_permission_is_left_out_with_a_warning() {
    for vendor in FEEDS {
        let mut directory = seed();
        directory.withhold_feed_permission();
        let h = harness_with(vendor, "", directory).await;
        let outcome = h.sync(Resync::Auto).await;
        assert!(outcome.warnings.is_empty(), "{vendor:?}: a full run reads no feed");
        h.fake.edit(|d| {
            d.delete_user("1004");
            d.put_user("1030", "late.joiner", true);
        });
        let outcome = h.sync(Resync::Auto).await;
        assert_eq!(
            outcome.scope,
            idpsync_engine::reconcile::ListingScope::Incremental,
            "{vendor:?}"
        );
        assert!(
            outcome
                .warnings
                .iter()
                .any(|w| w.contains("deletion feed off") && w.contains("403")),
            "{vendor:?}: {:?}",
            outcome.warnings
        );
        assert_eq!(h.user_active("1030"), Some(true), "{vendor:?}: the run went on");
        assert_eq!(
            h.user_active("1004"),
            Some(true),
            "{vendor:?}: no one deactivated by a refusal"
        );
        h.sync(Resync::Full).await;
        assert_eq!(
            h.user_active("1004"),
            None,
            "{vendor:?}: gone by absence at the full run"
        );
        h.fake.edit(|d| {
            d.grant_feed_permission();
            d.delete_user("1005");
        });
        let outcome = h.sync(Resync::Auto).await;
        assert!(outcome.warnings.is_empty(), "{vendor:?}: {:?}", outcome.warnings);
        assert_eq!(h.user_active("1005"), None, "{vendor:?}: the feed is read again");
        h.engine.shutdown().await;
    }
}

/// An Okta service app upgraded without the `okta.logs.read` grant: the token endpoint refuses
/// that scope (`invalid_scope`), so the token is asked for again without it and every run
/// goes on; incremental runs go without the System Log, which refuses such a token.
#[tokio::test(flavor = "multi_thread")]
async fn an_okta_service_app_without_the_logs_scope_syncs_without_the_feed() {
    let mut directory = seed();
    directory.withhold_feed_permission();
    let fake = FakeIdp::start(Vendor::Okta, directory, false).await;
    let toml = format!(
        "name = \"it\"\nrequest_timeout = \"1s\"\n{ABSENCE_AT_ONCE}{}",
        fake.okta_service_app_toml()
    );
    let driver = Driver::new(IntegrationConfig::from_toml(&toml).unwrap(), fast_retries()).unwrap();
    let (engine, tenant) = open_tenant().await;
    let dir = tempfile::tempdir().unwrap();
    let cursors = CursorStore::new(dir.path());
    let outcome = sync_once(&driver, &tenant, &cursors, Mode::Apply, Resync::Auto)
        .await
        .unwrap();
    assert_eq!(outcome.result, SyncResult::Applied);
    assert_eq!(outcome.listed.users, 20);
    let tokens: Vec<String> = fake
        .take_recorded()
        .into_iter()
        .filter(|r| r.path == "/oauth2/v1/token")
        .map(|r| r.body.unwrap()["scope"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        tokens,
        [
            "okta.users.read okta.groups.read okta.logs.read",
            "okta.users.read okta.groups.read"
        ],
        "asked again without the refused scope"
    );
    fake.edit(|d| d.put_user("1030", "late.joiner", true));
    let outcome = sync_once(&driver, &tenant, &cursors, Mode::Apply, Resync::Auto)
        .await
        .unwrap();
    assert_eq!(outcome.scope, idpsync_engine::reconcile::ListingScope::Incremental);
    assert!(
        outcome.warnings.iter().any(|w| w.contains("okta.logs.read")),
        "{:?}",
        outcome.warnings
    );
    let it = IntegrationName::new("it").unwrap();
    assert!(tenant.state().owned_user(&it, "1030").is_some(), "the run went on");
    engine.shutdown().await;
}

/// A moment `seconds` ago on the wall clock, to the millisecond (as the vendors' feeds date).
fn seconds_ago(seconds: u64) -> std::time::SystemTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let millis = Duration::from_millis(now.as_millis() as u64) - Duration::from_secs(seconds);
    std::time::UNIX_EPOCH + millis
}

/// The engine's time of a wall-clock moment.
fn timestamp(at: std::time::SystemTime) -> idpsync_storage::Timestamp {
    idpsync_storage::Timestamp(at.duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64)
}

/// When the IdP made the leave of `user`, as its audit says.
async fn idp_changed_at(h: &Harness, user: idpsync_engine::ids::UserId) -> Option<idpsync_storage::Timestamp> {
    use idpsync_engine::audit::{AuditSources, BindingLog, audit_user};
    let mut bindings = BindingLog::default();
    bindings.catch_up(&h.tenant).await.unwrap();
    let names = std::collections::BTreeMap::new();
    let sources = AuditSources {
        bindings: &bindings,
        token_names: &names,
    };
    let audit = audit_user(&h.tenant, user, &sources).await.unwrap();
    audit.offboarding.expect("a leaver").idp_changed_at
}

/// The IdP's own time of a deletion its feed reports (Okta's `published`, Auth0's `date`,
/// authentik's `created`) is where the leaver's chain starts; so is Okta's time of a
/// deactivation, from the System Log on an incremental run and from the user's
/// `statusChanged` on a full one.
#[tokio::test(flavor = "multi_thread")]
async fn the_idp_s_time_of_a_leave_is_the_first_step_of_the_leaver_s_chain() {
    for vendor in FEEDS {
        let h = start(vendor, "", seed()).await;
        h.sync(Resync::Auto).await;
        let user = h.tenant.state().owned_user(&h.name, "1004").unwrap();
        let at = seconds_ago(90);
        h.fake.edit(|d| {
            d.delete_user("1004");
            d.date_last_change(at);
        });
        let outcome = h.sync(Resync::Auto).await;
        assert_eq!(h.user_active("1004"), None, "{vendor:?}: {:?}", outcome.report.changes);
        assert_eq!(idp_changed_at(&h, user).await, Some(timestamp(at)), "{vendor:?}");
        h.engine.shutdown().await;
    }
    for resync in [Resync::Auto, Resync::Full] {
        let h = start(Vendor::Okta, "", seed()).await;
        h.sync(Resync::Auto).await;
        let user = h.tenant.state().owned_user(&h.name, "1007").unwrap();
        let at = seconds_ago(60);
        h.fake.edit(|d| {
            d.set_active("1007", false);
            d.date_last_change(at);
        });
        h.sync(resync).await;
        assert_eq!(h.user_active("1007"), Some(false), "{resync:?}");
        assert_eq!(idp_changed_at(&h, user).await, Some(timestamp(at)), "{resync:?}");
        h.engine.shutdown().await;
    }
}
