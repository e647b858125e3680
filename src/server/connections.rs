//! Accepting and keeping connections: the connection cap, the HTTP/1 connection of each, the
//! timeouts that close what a slow or idle client holds, and graceful shutdown.
//!
//! A connection is in one of two phases, and each has its own bound:
//! - **between requests** (nothing in progress): it is closed once it has been quiet for
//!   [`HttpLimits::idle_timeout`]; once the first byte of a request head arrives, the whole
//!   head must follow within [`HttpLimits::header_read_timeout`] (a client that trickles a head
//!   byte by byte — slowloris — is closed then);
//! - **during a request** (from its head to the end of its response): the request body must
//!   arrive in full within [`HttpLimits::request_body_timeout`] of the head; the response takes
//!   as long as the handler and its stream take (a change stream lives for hours, with
//!   heartbeats).
//!
//! At [`HttpLimits::connections_max`] open connections the server stops accepting until one
//! closes; the kernel's backlog holds the newcomers meanwhile. A watchdog task per connection
//! sleeps until the next moment one of the bounds could be passed, so thousands of idle
//! connections cost a wake-up each every few seconds, not a busy loop.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use super::HttpLimits;
use super::guarded_body::GuardedBody;

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets the requests in flight finish and closes idle connections.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    pause_after_accept_error(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            metrics::gauge!("idpsync_http_connections").increment(1.0);
            serve_connection(stream, router, limits, watcher).await;
            metrics::gauge!("idpsync_http_connections").decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// An accept error is about one connection (the client went away) or about the process (out of
/// file descriptors): in the second case accepting again at once would spin, so wait a little.
async fn pause_after_accept_error(error: io::Error) {
    let per_connection = matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    );
    if !per_connection {
        tracing::warn!(%error, "accepting a connection failed; retrying in 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection: HTTP/1 with keep-alive, each request's body under a deadline, and a
/// watchdog that closes the connection when it has been idle, or stuck in a request head, for
/// too long.
async fn serve_connection(stream: TcpStream, router: Router, limits: HttpLimits, watcher: Watcher) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let body_timeout = limits.request_body_timeout;
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_progress = InProgress::begin(&requests);
        let request = request.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap_or_else(|never| match never {});
            Ok::<_, Infallible>(response.map(|body| GuardedBody::wrap(body, in_progress)))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    let connection = watcher.watch(connection);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        reason = watchdog(&activity, &limits) => {
            tracing::debug!(reason, "closing a connection");
            metrics::counter!("idpsync_http_connections_closed_total", "reason" => reason).increment(1);
        }
    }
}

/// Resolves, with the reason, once the connection has passed one of its bounds.
async fn watchdog(activity: &Activity, limits: &HttpLimits) -> &'static str {
    // Re-checked at least this often, so that a head starting during a long idle sleep is
    // held to its own, shorter bound.
    let recheck = limits
        .header_read_timeout
        .min(limits.idle_timeout)
        .max(Duration::from_millis(50));
    loop {
        let now = activity.now_ms();
        let (deadline_ms, reason) = match activity.phase() {
            Phase::InRequest => (None, ""),
            Phase::ReadingHead { since_ms } => (
                Some(since_ms.saturating_add(millis(limits.header_read_timeout))),
                "request head too slow",
            ),
            Phase::Idle { since_ms } => (Some(since_ms.saturating_add(millis(limits.idle_timeout))), "idle"),
        };
        if let Some(deadline_ms) = deadline_ms
            && now >= deadline_ms
        {
            return reason;
        }
        let wait = deadline_ms.map_or(recheck, |deadline| Duration::from_millis(deadline - now).min(recheck));
        tokio::time::sleep(wait).await;
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What a connection is doing, as its watchdog sees it.
enum Phase {
    /// A request is being read, handled or answered.
    InRequest,
    /// Nothing in progress; the first byte of the next head arrived at `since_ms`.
    ReadingHead { since_ms: u64 },
    /// Nothing in progress and nothing received since `since_ms`.
    Idle { since_ms: u64 },
}

/// Marks that nothing was received since the connection went idle.
const NO_HEAD: u64 = u64::MAX;

/// What a connection's reads and requests tell its watchdog. Times are milliseconds since
/// the connection opened.
struct Activity {
    opened: Instant,
    /// Requests whose response has not been sent in full (HTTP/1 has at most one).
    in_progress: AtomicUsize,
    /// When the connection last became idle.
    idle_since_ms: AtomicU64,
    /// When the first byte arrived while idle, or [`NO_HEAD`].
    head_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_progress: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(NO_HEAD),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.opened.elapsed())
    }

    fn phase(&self) -> Phase {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return Phase::InRequest;
        }
        match self.head_since_ms.load(Ordering::Acquire) {
            NO_HEAD => Phase::Idle {
                since_ms: self.idle_since_ms.load(Ordering::Acquire),
            },
            since_ms => Phase::ReadingHead { since_ms },
        }
    }

    /// Bytes arrived: between requests, they start the next head's clock.
    fn received(&self) {
        if self.in_progress.load(Ordering::Acquire) == 0 {
            let now = self.now_ms();
            let _ = self
                .head_since_ms
                .compare_exchange(NO_HEAD, now, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// A request from its head to the end of its response; dropping it makes the connection idle.
struct InProgress {
    activity: Arc<Activity>,
}

impl InProgress {
    fn begin(activity: &Arc<Activity>) -> InProgress {
        activity.in_progress.fetch_add(1, Ordering::AcqRel);
        activity.head_since_ms.store(NO_HEAD, Ordering::Release);
        InProgress {
            activity: Arc::clone(activity),
        }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.activity
            .idle_since_ms
            .store(self.activity.now_ms(), Ordering::Release);
        self.activity.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The TCP stream, reporting each read to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.received();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that fails once its deadline passes before it has arrived in full.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

/// The error of a request body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct BodyTimedOut(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyTimedOut(self.timeout).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
