//! Following other replicas: when several processes share one log store (PostgreSQL), each
//! folds in what the others append, so that its reads and its change stream include their
//! writes. The store tells of every head that moves (`LogStore::head_notices`); the follower
//! catches the tenant up to it if this replica has loaded it (a tenant not loaded here is left
//! alone: loading reads it up to its head, so it starts caught up). A notice can be missed (the store's listening connection drops, the follower lags), so
//! the follower also reads every head on a timer and whenever the store says notices were
//! missed: a missed notice delays a record, it never loses one.

use std::sync::{Arc, Weak};
use std::time::Duration;

use idpsync_storage::{HeadNotice, Seq, TenantId};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::engine::Engine;
use crate::error::EngineError;

/// A running follower; it stops when this is dropped.
pub struct Follower {
    task: JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a follower does next.
enum Wanted {
    /// One tenant moved to `seq`.
    One(TenantId, Seq),
    /// Every tenant may have moved.
    All,
    /// The store is gone.
    Stop,
}

/// Starts following the other writers of `engine`'s store, reading every head at least every
/// `every`; `None` when only this process writes the store.
pub(crate) fn start(engine: &Arc<Engine>, every: Duration) -> Option<Follower> {
    let notices = engine.store().head_notices()?;
    let task = tokio::spawn(run(Arc::downgrade(engine), notices, every));
    Some(Follower { task })
}

async fn run(engine: Weak<Engine>, mut notices: broadcast::Receiver<HeadNotice>, every: Duration) {
    let mut timer = tokio::time::interval(every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wanted = tokio::select! {
            notice = notices.recv() => match notice {
                Ok(HeadNotice::Moved { tenant, seq }) => Wanted::One(tenant, seq),
                Ok(HeadNotice::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => Wanted::All,
                Err(broadcast::error::RecvError::Closed) => Wanted::Stop,
            },
            _ = timer.tick() => Wanted::All,
        };
        let Some(engine) = engine.upgrade() else { return };
        let followed = match wanted {
            Wanted::One(tenant, seq) => follow_one(&engine, &tenant, seq).await,
            Wanted::All => follow_all(&engine).await,
            Wanted::Stop => return,
        };
        if let Err(error) = followed {
            tracing::warn!(%error, "cannot follow another replica's appends yet; trying again at the next notice or tick");
        }
    }
}

/// Catches every loaded tenant up to its head.
async fn follow_all(engine: &Engine) -> Result<(), EngineError> {
    for tenant in engine.loaded_tenants() {
        tenant.catch_up().await?;
    }
    Ok(())
}

/// Catches `tenant` up to `seq` if it is loaded or loading here (a loading one once it is
/// loaded, so that what was appended while it loaded is not skipped).
async fn follow_one(engine: &Engine, tenant: &TenantId, seq: Seq) -> Result<(), EngineError> {
    if let Some(open) = engine.wanted_tenant(tenant).await? {
        open.catch_up_to(seq).await?;
    }
    Ok(())
}
