//! [`Pacer`]: one integration's requests held back on its vendor's rate-limit signals, so that a
//! run with several requests in flight slows down before the vendor refuses it, instead of
//! after.
//!
//! Every answer's quota headers are read — Okta `X-Rate-Limit-Remaining` and
//! `X-Rate-Limit-Reset` (epoch seconds), Auth0 `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//! (epoch seconds), the IETF `RateLimit-Remaining` and `RateLimit-Reset` (seconds from now) —
//! and when what is left of the window is no more than the requests that may be in flight at
//! once, no new request starts until the window resets. A 429's wait (`Retry-After` or a reset
//! header) holds back every request of the integration, not only the one refused.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::HeaderMap;

use crate::http::{epoch_reset, header_text};

/// When an integration's next request may start.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// How many requests may be in flight at once: a window with this many or fewer requests
    /// left is waited out.
    reserve: u64,
    not_before: Mutex<Option<Instant>>,
}

impl Pacer {
    /// A pacer for an integration with at most `in_flight` requests at once.
    pub(crate) fn new(in_flight: usize) -> Pacer {
        Pacer {
            reserve: in_flight.max(1) as u64,
            not_before: Mutex::new(None),
        }
    }

    /// How long a request must wait before it starts (zero when it may start now).
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        let not_before = *self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        not_before.map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    /// Reads an answer's quota headers: when the window is nearly spent, holds requests back
    /// until it resets.
    pub(crate) fn observe(&self, headers: &HeaderMap, now: Instant, clock: SystemTime) {
        let Some(remaining) = remaining(headers) else {
            return;
        };
        if remaining > self.reserve {
            return;
        }
        if let Some(reset) = reset_after(headers, clock) {
            self.hold_until(now + reset);
        }
    }

    /// Holds every request back for `wait` (a refused request's `Retry-After`).
    pub(crate) fn hold(&self, now: Instant, wait: Duration) {
        self.hold_until(now + wait);
    }

    fn hold_until(&self, at: Instant) {
        let mut not_before = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        if not_before.is_none_or(|current| current < at) {
            *not_before = Some(at);
        }
    }
}

/// Requests left in the vendor's current window, if it says.
fn remaining(headers: &HeaderMap) -> Option<u64> {
    ["x-rate-limit-remaining", "x-ratelimit-remaining", "ratelimit-remaining"]
        .into_iter()
        .find_map(|name| header_text(headers, name)?.parse().ok())
}

/// How long until the vendor's window resets, if it says: epoch seconds in the Okta and Auth0
/// headers, seconds from now in the IETF one.
fn reset_after(headers: &HeaderMap, clock: SystemTime) -> Option<Duration> {
    if let Some(seconds) = header_text(headers, "ratelimit-reset").and_then(|value| value.parse().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    let epoch = epoch_reset(headers)?;
    let reset = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(epoch))?;
    Some(reset.duration_since(clock).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::headers;

    #[test]
    fn a_nearly_spent_window_holds_requests_until_it_resets() {
        let clock = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = Instant::now();
        let pacer = Pacer::new(4);
        pacer.observe(
            &headers(&[("x-rate-limit-remaining", "5"), ("x-rate-limit-reset", "1700000030")]),
            now,
            clock,
        );
        assert_eq!(pacer.wait(now), Duration::ZERO, "five left, four in flight at most");
        pacer.observe(
            &headers(&[("x-rate-limit-remaining", "4"), ("x-rate-limit-reset", "1700000030")]),
            now,
            clock,
        );
        assert_eq!(pacer.wait(now), Duration::from_secs(30));
        assert_eq!(pacer.wait(now + Duration::from_secs(31)), Duration::ZERO);
    }

    #[test]
    fn each_vendor_s_headers_are_read() {
        let clock = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = Instant::now();
        let pacer = Pacer::new(1);
        pacer.observe(
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000002")]),
            now,
            clock,
        );
        assert_eq!(pacer.wait(now), Duration::from_secs(2), "Auth0");
        let pacer = Pacer::new(1);
        pacer.observe(
            &headers(&[("ratelimit-remaining", "1"), ("ratelimit-reset", "7")]),
            now,
            clock,
        );
        assert_eq!(pacer.wait(now), Duration::from_secs(7), "IETF");
        let pacer = Pacer::new(1);
        pacer.observe(&headers(&[("x-rate-limit-remaining", "0")]), now, clock);
        assert_eq!(pacer.wait(now), Duration::ZERO, "no reset, nothing to wait for");
    }

    #[test]
    fn a_hold_is_never_shortened() {
        let now = Instant::now();
        let pacer = Pacer::new(2);
        pacer.hold(now, Duration::from_secs(10));
        pacer.hold(now, Duration::from_secs(3));
        assert_eq!(pacer.wait(now), Duration::from_secs(10));
    }
}
