//! The service's checkpoint schedule: one checkpoint per tenant every `every_events` records or
//! every `every` (when the log moved since the last one), and a last one when the service
//! stops.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use idpsync_engine::Engine;
use idpsync_storage::{Seq, TenantId};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{append, make, stored};

/// When to sign.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many records since the last checkpoint.
    pub every_events: u64,
    /// After this long since the last checkpoint, if any record came in.
    pub every: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_events: 100_000,
            every: Duration::from_secs(15 * 60),
        }
    }
}

/// How often the schedule looks at the tenants' heads.
const POLL: Duration = Duration::from_secs(1);

/// The running schedule.
pub struct CheckpointSigner {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Last {
    seq: Seq,
    at: Instant,
}

struct Schedule {
    engine: Arc<Engine>,
    data_dir: PathBuf,
    key: SigningKey,
    policy: CheckpointPolicy,
    last: BTreeMap<TenantId, Last>,
}

impl Schedule {
    /// Signs a checkpoint of every loaded tenant whose log moved and is due (all that moved,
    /// when `force`); a tenant not loaded since the start has not moved through this process.
    async fn round(&mut self, force: bool) {
        for tenant in self.engine.loaded_tenants() {
            let id = tenant.id().clone();
            let head = tenant.state().seq();
            let last = self.last.entry(id.clone()).or_insert(Last {
                seq: Seq::ZERO,
                at: Instant::now(),
            });
            if head <= last.seq {
                continue;
            }
            let due =
                force || head.0 - last.seq.0 >= self.policy.every_events || last.at.elapsed() >= self.policy.every;
            if !due {
                continue;
            }
            match make(&tenant, self.engine.store(), &self.key).await {
                Ok(Some(checkpoint)) => match append(&self.data_dir, &checkpoint) {
                    Ok(()) => {
                        tracing::info!(tenant = %id, seq = checkpoint.seq, "signed a checkpoint");
                        record_signed(&id);
                        *last = Last {
                            seq: Seq(checkpoint.seq),
                            at: Instant::now(),
                        };
                    }
                    Err(error) => tracing::error!(tenant = %id, %error, "cannot store a checkpoint"),
                },
                Ok(None) => {}
                Err(error) => tracing::error!(tenant = %id, %error, "cannot make a checkpoint"),
            }
        }
    }
}

/// `idpsync_checkpoint_last_timestamp_seconds{tenant}`: when the tenant's newest checkpoint
/// was signed (its age is `time() -` that).
fn record_signed(tenant: &TenantId) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!("idpsync_checkpoint_last_timestamp_seconds", "tenant" => tenant.to_string()).set(now.as_secs_f64());
}

impl CheckpointSigner {
    /// Starts the schedule; the last stored checkpoint of each tenant counts as its latest.
    pub fn start(
        engine: Arc<Engine>,
        data_dir: PathBuf,
        key: SigningKey,
        policy: CheckpointPolicy,
    ) -> CheckpointSigner {
        let mut last = BTreeMap::new();
        match stored(&data_dir, None) {
            Ok(checkpoints) => {
                for checkpoint in checkpoints {
                    last.insert(
                        checkpoint.tenant.clone(),
                        Last {
                            seq: Seq(checkpoint.seq),
                            at: Instant::now(),
                        },
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the stored checkpoints; signing anew"),
        }
        let mut schedule = Schedule {
            engine,
            data_dir,
            key,
            policy,
            last,
        };
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => schedule.round(false).await,
                    _ = stopped.changed() => {
                        schedule.round(true).await;
                        return;
                    }
                }
            }
        });
        CheckpointSigner { stop, task }
    }

    /// Stops the schedule after signing a last checkpoint of every tenant whose log moved.
    /// Call it before the engine shuts down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
