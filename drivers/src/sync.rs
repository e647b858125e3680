//! One sync run end to end: read the IdP (incrementally when a cursor allows, fully otherwise;
//! again when the listing shifted while it was read), hand the listing with the integration's scope rules to the engine, which plans it (dry run:
//! nothing is written) or reconciles it, and keep the cursor only once the run was applied.

use std::time::{Duration, Instant};

use idpsync_engine::ids::SyncRunId;
use idpsync_engine::reconcile::{Baseline, Guard, ListingScope, ReconcileReport, ScopeRules, SyncInput};
use idpsync_engine::{SubmitError, Tenant};
use time::OffsetDateTime;

use crate::client::Run;
use crate::cursor_store::{CursorStore, IntegrationState};
use crate::driver::Driver;
use crate::error::DriverError;
use crate::http::Budget;
use crate::provider::{Cursor, Fetched};

/// Whether a run writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Apply the snapshot; the mass-deactivation guard may hold it.
    Apply,
    /// Apply the snapshot even if the guard would hold it: an operator reviewed the hold.
    ApplyConfirmingHold,
    /// Plan only: nothing is written.
    DryRun,
}

/// Which listing a run asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resync {
    /// Incremental when a cursor allows and the full resync is not due.
    Auto,
    /// A full listing whatever the cursor says.
    Full,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct SyncOutcome {
    /// The run's id, in every event it caused.
    pub run: SyncRunId,
    /// Full or incremental.
    pub scope: ListingScope,
    /// What happened to the snapshot.
    pub result: SyncResult,
    /// The changes, applied or planned (or held).
    pub report: ReconcileReport,
    /// Objects read from the IdP, before filters.
    pub listed: Listed,
    /// HTTP requests sent, retries and token requests included.
    pub requests: u64,
    /// Requests the IdP refused as over its rate limit (429, or Google's quota 403).
    pub rate_limited: u64,
    /// How long the run took.
    pub elapsed: Duration,
    /// Of which reading the IdP.
    pub read_elapsed: Duration,
    /// Things an operator should know that did not stop the run.
    pub warnings: Vec<String>,
}

/// Counts of what a run read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    /// Users.
    pub users: usize,
    /// Groups.
    pub groups: usize,
    /// Membership edges.
    pub memberships: usize,
}

/// What happened to a run's snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncResult {
    /// Applied (possibly with nothing to change).
    Applied,
    /// Planned by a dry run; nothing written.
    Planned,
    /// Held by the mass-deactivation guard; only the hold was recorded.
    Held,
}

/// Why a run failed. Nothing of it was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The IdP could not be read completely.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The engine refused or could not write the snapshot.
    #[error("the engine did not apply the snapshot: {0}")]
    Engine(#[from] SubmitError),
    /// The state file could not be written after the snapshot was applied (the next run will
    /// read again from the old cursor, which is safe).
    #[error("cannot save the integration's state: {0}")]
    State(std::io::Error),
}

/// How many times a run reads an IdP whose listing shifts under it (objects created or
/// deleted between two pages of an offset or page-number listing) before it gives up.
const LISTING_TRIES: u32 = 3;

/// Reads the IdP; a listing that shifted while it was read is read again (up to
/// [`LISTING_TRIES`] times in all, within the run's budget), never taken as complete.
async fn fetch_holding_still(driver: &Driver, run: &Run<'_>, since: Option<&Cursor>) -> Result<Fetched, DriverError> {
    let mut tries = 1;
    loop {
        match driver.fetch(run, since).await {
            Err(DriverError::Shifted { resource, reason }) if tries < LISTING_TRIES => {
                run.warn(format!(
                    "the listing of {resource} shifted while it was read ({reason}); reading it again"
                ));
                tries += 1;
            }
            Err(DriverError::Shifted { resource, reason }) => {
                return Err(DriverError::Shifted {
                    resource,
                    reason: format!(
                        "{reason}, on each of {LISTING_TRIES} tries; nothing applied, the next run retries"
                    ),
                });
            }
            other => return other,
        }
    }
}

/// The run's input: `fetched` with the integration's rules, and the users an incremental
/// listing under `only_group_members` brings into scope without listing them read by id; where
/// the IdP's module cannot read users by id, a complete listing instead. With the cursor the
/// next run starts from.
async fn with_users_entering_scope(
    driver: &Driver,
    tenant: &Tenant,
    run: &Run<'_>,
    run_id: SyncRunId,
    rules: ScopeRules,
    fetched: Fetched,
) -> Result<(SyncInput, Option<Cursor>), DriverError> {
    let mut input = SyncInput {
        integration: driver.config().name.clone(),
        run: run_id,
        listing: fetched.listing,
        rules,
    };
    let wanted = tenant.users_to_fetch(&input);
    if wanted.is_empty() || driver.add_users(run, &mut input.listing, &wanted).await? {
        return Ok((input, fetched.cursor));
    }
    run.warn(format!(
        "{} users joined a synced group and this IdP's users cannot be read by id; listing everything",
        wanted.len()
    ));
    let complete = fetch_holding_still(driver, run, None).await?;
    input.listing = complete.listing;
    Ok((input, complete.cursor))
}

/// Runs one sync of `driver` into `tenant`.
pub async fn sync_once(
    driver: &Driver,
    tenant: &Tenant,
    cursors: &CursorStore,
    mode: Mode,
    resync: Resync,
) -> Result<SyncOutcome, SyncError> {
    let started = Instant::now();
    let config = driver.config();
    let state = cursors.load(&config.name).await.unwrap_or_else(|error| {
        tracing::warn!(integration = %config.name, %error, "the integration's state file is unreadable; listing everything");
        IntegrationState::default()
    });
    let source = format!("{} {}", config.provider_name(), config.base_url);
    let state = if state.source.as_deref() == Some(source.as_str()) {
        state
    } else {
        // Another IdP, or the same at another address, since the cursor was kept.
        IntegrationState::default()
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let full_due = state
        .last_full_unix_seconds
        .is_none_or(|last| now.saturating_sub(last) >= config.full_resync.as_secs() as i64);
    let incremental = resync == Resync::Auto && driver.has_incremental() && !full_due && state.cursor.is_some();
    let budget = Budget::new(config.sync_timeout);
    // Users read as the tenant holds them are kept as its records, not copied.
    let baseline = Baseline::new(tenant.state(), config.name.clone());
    let run = Run::new(&budget, driver.selection()).compared_with(baseline);
    let since = state.cursor.as_ref().filter(|_| incremental);
    let fetched = match fetch_holding_still(driver, &run, since).await {
        Err(DriverError::CursorExpired(why)) if since.is_some() => {
            run.warn(format!(
                "the delta cursor is no longer valid ({why}); listing everything"
            ));
            fetch_holding_still(driver, &run, None).await?
        }
        other => other?,
    };
    let run_id = SyncRunId::new();
    let rules = ScopeRules {
        groups: config.groups.clone(),
        only_group_members: config.only_group_members,
        absence: config.absence,
    };
    let (input, cursor) = with_users_entering_scope(driver, tenant, &run, run_id, rules, fetched).await?;
    let read_elapsed = started.elapsed();
    let scope = input.listing.scope();
    let listed = Listed {
        users: input.listing.user_count(),
        groups: input.listing.group_count(),
        memberships: input.listing.membership_count(),
    };
    let report = match mode {
        Mode::DryRun => tenant.plan(input),
        Mode::Apply => tenant.reconcile(input, Guard::Enforce).await?,
        Mode::ApplyConfirmingHold => tenant.reconcile(input, Guard::Confirmed).await?,
    };
    let result = match (&report.held, mode) {
        (Some(_), _) => SyncResult::Held,
        (None, Mode::DryRun) => SyncResult::Planned,
        (None, Mode::Apply | Mode::ApplyConfirmingHold) => SyncResult::Applied,
    };
    if result == SyncResult::Applied {
        let saved = IntegrationState {
            source: Some(source),
            cursor,
            last_full_unix_seconds: match scope {
                ListingScope::Complete => Some(now),
                ListingScope::Incremental => state.last_full_unix_seconds,
            },
        };
        cursors.save(&config.name, &saved).await.map_err(SyncError::State)?;
    }
    Ok(SyncOutcome {
        run: run_id,
        scope,
        result,
        report,
        listed,
        requests: budget.requests(),
        rate_limited: budget.rate_limited(),
        elapsed: started.elapsed(),
        read_elapsed,
        warnings: run.into_warnings(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use idpsync_engine::reconcile::{ExternalMember, GroupFilter, Listing, SnapshotGroup};
    use idpsync_engine::{Engine, TenantSettings};
    use idpsync_storage::{MemoryStore, TenantId};

    use super::*;
    use crate::fake::{Directory, FakeIdp, FakeMember, Vendor};
    use crate::{IntegrationConfig, RetryPolicy};

    /// A vendor whose module cannot read users by id (Google's) given an incremental listing
    /// that brings a user into scope unlisted: the run lists everything instead, and says so.
    #[tokio::test(flavor = "multi_thread")]
    async fn users_entering_scope_that_cannot_be_read_by_id_make_the_run_list_everything() {
        let mut directory = Directory::default();
        directory.put_user("1001", "ann.smith", true);
        directory.put_group("g-eng", "vpn-eng");
        directory.join("g-eng", FakeMember::User("1001".into()));
        let fake = FakeIdp::start(Vendor::Google, directory, false).await;
        let toml = format!("name = \"it\"\nonly_group_members = true\n{}", fake.integration_toml());
        let driver = Driver::new(IntegrationConfig::from_toml(&toml).unwrap(), RetryPolicy::default()).unwrap();
        let engine = Engine::open(Arc::new(MemoryStore::new()), TenantSettings::default())
            .await
            .unwrap();
        let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
        let mut listing = Listing::new(ListingScope::Incremental);
        listing.add_group(SnapshotGroup {
            external_id: "g-eng".into(),
            display_name: "vpn-eng".into(),
        });
        listing.add_member("g-eng", ExternalMember::User("1001".into()));
        listing.refreshed("g-eng");
        let budget = Budget::new(Duration::from_secs(30));
        let run = Run::new(&budget, driver.selection());
        let rules = ScopeRules {
            groups: GroupFilter::default(),
            only_group_members: true,
            absence: Default::default(),
        };
        let fetched = Fetched { listing, cursor: None };
        let (input, _) = with_users_entering_scope(&driver, &tenant, &run, SyncRunId::new(), rules, fetched)
            .await
            .unwrap();
        assert_eq!(input.listing.scope(), ListingScope::Complete);
        assert!(input.listing.has_user("1001"));
        let warnings = run.into_warnings();
        assert!(
            warnings.iter().any(|warning| warning.contains("cannot be read by id")),
            "{warnings:?}"
        );
        engine.shutdown().await;
    }
}
