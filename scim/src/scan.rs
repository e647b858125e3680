//! Where list and search requests that scan run, and how much each may do.
//!
//! A request scans when it must render resources one by one: a filter the indexes cannot
//! answer exactly, or a `sortBy`. Such work never runs on the async workers, which every other
//! request needs: it runs on tokio's blocking threads, at most
//! [`Settings::scans_concurrent_max`](crate::Settings::scans_concurrent_max) at once. A scan
//! beyond them waits up to
//! [`Settings::scan_queue_wait`](crate::Settings::scan_queue_wait) for its turn, then is
//! answered 503 with `Retry-After`, so that a flood of scans is refused rather than queued
//! without end, and lookups by id or by an indexed filter keep being answered meanwhile.
//!
//! Each scan has a [`ScanBudget`]: the most resources it may examine and the longest it may
//! run. A scan that would exceed either stops and is answered 400 `tooMany`, saying to narrow
//! the filter with an indexed attribute. A scan whose client went away stops at the next
//! resource it examines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ScimType};

/// How long a client refused for a full pool is asked to wait.
const RETRY_AFTER_SECONDS: u32 = 1;

/// What the filters the indexes answer are, for the errors that ask for a narrower one.
const INDEXED: &str = "userName eq or sw, externalId eq, id eq; for groups displayName eq and members.value eq";

/// The bounds of one scan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScanLimits {
    /// The most resources one scan may examine.
    pub(crate) resources_max: usize,
    /// The longest one scan may run.
    pub(crate) time_max: Duration,
}

/// What one scan may still do. Every resource a scan renders passes [`ScanBudget::examine`]
/// first.
#[derive(Debug)]
pub(crate) struct ScanBudget {
    limits: ScanLimits,
    examined: usize,
    deadline: Instant,
    abandoned: Arc<AtomicBool>,
}

impl ScanBudget {
    /// A budget whose time starts now.
    pub(crate) fn start(limits: ScanLimits) -> ScanBudget {
        ScanBudget::watching(limits, Arc::default())
    }

    /// A budget whose time starts now, for a scan that stops once `abandoned` is set.
    fn watching(limits: ScanLimits, abandoned: Arc<AtomicBool>) -> ScanBudget {
        ScanBudget {
            limits,
            examined: 0,
            deadline: Instant::now() + limits.time_max,
            abandoned,
        }
    }

    /// Counts one more resource examined: 400 `tooMany` past either bound.
    pub(crate) fn examine(&mut self) -> Result<(), Error> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Err(Error::Internal("the client went away during a scan".to_owned()));
        }
        self.examined += 1;
        if self.examined > self.limits.resources_max {
            return Err(Error::bad(
                ScimType::TooMany,
                format!(
                    "the request would examine more than {} resources one by one; narrow the filter with an \
                     indexed comparison ({INDEXED})",
                    self.limits.resources_max
                ),
            ));
        }
        if Instant::now() >= self.deadline {
            return Err(Error::bad(
                ScimType::TooMany,
                format!(
                    "the request took longer than {} ms to evaluate; narrow the filter with an indexed \
                     comparison ({INDEXED})",
                    self.limits.time_max.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

/// The bounded set of blocking threads scans run on.
#[derive(Debug)]
pub(crate) struct ScanPool {
    permits: Arc<Semaphore>,
    concurrent_max: usize,
    queue_wait: Duration,
    limits: ScanLimits,
}

/// Sets the flag a running scan checks when the request that started it is dropped.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl ScanPool {
    /// A pool of `concurrent_max` (at least one) scans at a time, each within `limits`.
    pub(crate) fn new(concurrent_max: usize, queue_wait: Duration, limits: ScanLimits) -> ScanPool {
        let concurrent_max = concurrent_max.max(1);
        ScanPool {
            permits: Arc::new(Semaphore::new(concurrent_max)),
            concurrent_max,
            queue_wait,
            limits,
        }
    }

    /// The bounds of each scan.
    pub(crate) fn limits(&self) -> ScanLimits {
        self.limits
    }

    /// Runs `scan` on a blocking thread with a fresh budget, once a place in the pool is free;
    /// 503 with `Retry-After` if none frees up within the queue wait.
    ///
    /// The place is held by the request, not by the thread: if the request is dropped, the
    /// place is given back at once and the scan stops at the next resource it examines.
    pub(crate) async fn run<T, F>(&self, scan: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut ScanBudget) -> Result<T, Error> + Send + 'static,
    {
        let _permit = self.admit().await?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon = AbandonOnDrop(Arc::clone(&abandoned));
        let limits = self.limits;
        // The budget's time starts on the blocking thread, when the scan starts.
        let running = tokio::task::spawn_blocking(move || scan(&mut ScanBudget::watching(limits, abandoned)));
        running
            .await
            .map_err(|failure| Error::Internal(format!("a scan failed: {failure}")))?
    }

    async fn admit(&self) -> Result<OwnedSemaphorePermit, Error> {
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        // Without a wait, refuse at once: a timer of zero still lets the request queue until
        // the timer wheel's next tick.
        if !self.queue_wait.is_zero()
            && let Ok(Ok(permit)) =
                tokio::time::timeout(self.queue_wait, Arc::clone(&self.permits).acquire_owned()).await
        {
            return Ok(permit);
        }
        Err(Error::Busy {
            detail: format!(
                "{} requests that filter or sort without an index are already running; retry after \
                 {RETRY_AFTER_SECONDS} s, or narrow the filter with an indexed comparison ({INDEXED})",
                self.concurrent_max
            ),
            retry_after_seconds: RETRY_AFTER_SECONDS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(resources_max: usize, time_max: Duration) -> ScanLimits {
        ScanLimits {
            resources_max,
            time_max,
        }
    }

    #[test]
    fn a_budget_allows_exactly_its_resources() {
        let mut budget = ScanBudget::start(limits(2, Duration::from_secs(3600)));
        assert!(budget.examine().is_ok());
        assert!(budget.examine().is_ok());
        let error = budget.examine().unwrap_err();
        assert_eq!(error.scim_type(), Some(ScimType::TooMany));
    }

    #[test]
    fn a_budget_without_time_refuses_at_once() {
        let mut budget = ScanBudget::start(limits(10, Duration::ZERO));
        let error = budget.examine().unwrap_err();
        assert_eq!(error.scim_type(), Some(ScimType::TooMany));
        assert!(error.to_string().contains("took longer than 0 ms"), "{error}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_dropped_request_gives_its_place_back_and_stops_its_scan() {
        let pool = Arc::new(ScanPool::new(
            1,
            Duration::ZERO,
            limits(usize::MAX, Duration::from_secs(3600)),
        ));
        let (started, started_seen) = std::sync::mpsc::channel();
        let (stopped, stopped_seen) = std::sync::mpsc::channel();
        let running = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(move |budget| {
                    started.send(()).unwrap();
                    let outcome = loop {
                        if let Err(error) = budget.examine() {
                            break error;
                        }
                        std::thread::yield_now();
                    };
                    stopped.send(outcome.to_string()).unwrap();
                    Ok(())
                })
                .await
            })
        };
        tokio::task::yield_now().await;
        started_seen.recv().unwrap();
        let busy = pool.run(|_| Ok(())).await.unwrap_err();
        assert!(matches!(busy, Error::Busy { .. }), "{busy:?}");
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        assert!(stopped_seen.recv().unwrap().contains("went away"));
        assert!(pool.run(|_| Ok(())).await.is_ok(), "the place was given back");
    }
}
