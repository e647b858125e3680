//! An integration's syncs on a tenant: planning a sync run (a dry run: nothing is written),
//! reconciling it through the writer, and the reconciles the guard holds.
//!
//! A hold is set and cleared in one place, [`Holds::settle`], once the batch that decided it
//! is durable: a held reconcile sets its integration's hold, a confirmed reconcile that applied
//! clears it ([`HoldChanges::note`] says which). An operator may also drop a hold
//! ([`Tenant::reject_held`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use idpsync_storage::{Seq, TenantId};
use serde::Serialize;
use tokio::sync::oneshot;

use super::erasure::reconcile_view;
use super::{Committed, Job, Tenant};
use crate::decide::Outcome;
use crate::error::SubmitError;
use crate::event::HoldSummary;
use crate::ids::IntegrationName;
use crate::reconcile::{self, DirectorySnapshot, Guard, ReconcileReport, SyncInput};

/// A reconcile the guard held, waiting for an operator.
#[derive(Clone, Debug, Serialize)]
pub struct HeldReconcile {
    /// What it would do.
    pub report: ReconcileReport,
    /// The snapshot, so that confirming applies exactly what was reviewed (re-planned against
    /// the state at confirmation).
    #[serde(skip)]
    pub snapshot: Arc<DirectorySnapshot>,
    /// The log's head when it was held.
    pub held_at: Seq,
}

impl Tenant {
    /// Plans a sync run against the latest published state and writes nothing: what
    /// [`Tenant::reconcile`] with [`Guard::Enforce`] would do now. The report's `held` is set
    /// when the guard would hold it.
    pub fn plan(&self, input: SyncInput) -> ReconcileReport {
        let state = self.state();
        // As the writer does: the erased users the listing names are recognised.
        let view = reconcile_view(
            &state,
            &self.keyring,
            &input.integration,
            input.listing.named_user_ids(),
        );
        let snapshot = input.into_snapshot(&view);
        let mut new_id = uuid::Uuid::now_v7;
        reconcile::plan(&view, &snapshot, Guard::Enforce, &self.settings.policy, &mut new_id).into_report()
    }

    /// Reconciles a sync run through the writer, which turns the listing into a snapshot
    /// against its own state (after every earlier commit), then decides and commits it like any
    /// command. The report says what was applied; when its `held` is set the guard held the
    /// run, and only the hold was written.
    pub async fn reconcile(&self, input: SyncInput, guard: Guard) -> Result<ReconcileReport, SubmitError> {
        let pending = self
            .submit(|reply| Job::Reconcile {
                input: Box::new(input),
                guard,
                reply,
            })
            .await?;
        match pending.committed().await?.outcome {
            Outcome::Reconciled(report) | Outcome::Held(report) => Ok(report),
            other => unreachable!("a reconcile decides Reconciled or Held, not {other:?}"),
        }
    }

    /// The reconciles held by the guard, per integration.
    pub fn held(&self) -> BTreeMap<IntegrationName, HeldReconcile> {
        self.holds.lock().clone()
    }

    /// Applies an integration's held reconcile, re-planned against the current state, with the
    /// guard lifted.
    pub async fn confirm_held(&self, integration: IntegrationName) -> Result<Committed, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job::ConfirmHeld { integration, reply })
            .await
            .map_err(|_| SubmitError::Closed)?;
        answer.await.unwrap_or(Err(SubmitError::Closed))
    }

    /// Drops an integration's held reconcile; returns whether there was one.
    pub fn reject_held(&self, integration: &IntegrationName) -> bool {
        self.holds.lock().remove(integration).is_some()
    }
}

/// A tenant's held reconciles, per integration.
#[derive(Default)]
pub(super) struct Holds(Mutex<BTreeMap<IntegrationName, HeldReconcile>>);

impl Holds {
    // A std mutex: held for short, synchronous sections only, never across an await.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<IntegrationName, HeldReconcile>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An integration's held reconcile.
    pub(super) fn get(&self, integration: &IntegrationName) -> Option<HeldReconcile> {
        self.lock().get(integration).cloned()
    }

    /// What each standing hold recorded, for `decide`: a hold that stands is not logged again
    /// on every poll.
    pub(super) fn summaries(&self) -> BTreeMap<IntegrationName, HoldSummary> {
        self.lock()
            .iter()
            .filter_map(|(name, held)| held.report.held.clone().map(|summary| (name.clone(), summary)))
            .collect()
    }

    /// Applies what a durable batch did to the holds.
    pub(super) fn settle(&self, changes: HoldChanges, tenant: &TenantId) {
        let mut holds = self.lock();
        for integration in changes.cleared {
            holds.remove(&integration);
        }
        holds.extend(changes.set);
        metrics::gauge!("idpsync_held_syncs", "tenant" => tenant.to_string()).set(holds.len() as f64);
    }
}

/// What a batch does to the holds once it is durable.
#[derive(Default)]
pub(super) struct HoldChanges {
    set: Vec<(IntegrationName, HeldReconcile)>,
    cleared: Vec<IntegrationName>,
}

impl HoldChanges {
    /// Notes what a decided reconcile of `snapshot` does to its integration's hold: a held one
    /// sets it (as of `head`, the log's head with the hold recorded), and one applied with the
    /// guard confirmed settles it.
    pub(super) fn note(&mut self, snapshot: &DirectorySnapshot, guard: Guard, outcome: &Outcome, head: Seq) {
        match outcome {
            Outcome::Held(report) => self.set.push((
                snapshot.integration.clone(),
                HeldReconcile {
                    report: report.clone(),
                    snapshot: Arc::new(snapshot.clone()),
                    held_at: head,
                },
            )),
            Outcome::Reconciled(_) if guard == Guard::Confirmed => self.cleared.push(snapshot.integration.clone()),
            _ => {}
        }
    }
}
