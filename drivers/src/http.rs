//! The HTTP layer every driver shares: one request with a per-request timeout, retried with
//! exponential back-off and jitter on 429, 5xx, timeouts and broken connections, honouring the
//! vendors' rate-limit signals (`Retry-After`, Okta `X-Rate-Limit-Reset`, Auth0
//! `X-RateLimit-Reset`, Google's 403 `userRateLimitExceeded`/`quotaExceeded`), all within the
//! run's total time budget ([`Budget`]). Requests are paced (`pacing`): a nearly spent quota
//! window, or a refusal, holds back every request of the integration until it may go.
//!
//! Whatever an IdP answers is bounded before it is trusted: a rate-limit wait longer than
//! [`RetryPolicy::retry_after_max`] or than what is left of the budget fails the run instead of
//! parking it, header arithmetic never overflows, and a body is read as it streams in and
//! refused once it passes [`RESPONSE_BYTES_MAX`], before it is held in memory.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rand::RngExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use crate::error::DriverError;
use crate::pacing::Pacer;

/// The most bytes one IdP response may have: 64 MiB. A page of a thousand users is about a
/// megabyte, so only a broken or hostile server sends more; its answer is refused as it streams
/// in (or at once, when its `Content-Length` says so) and the run fails.
pub(crate) const RESPONSE_BYTES_MAX: u64 = 64 << 20;

/// How much of a refused answer's body is read: enough for the error message and Google's
/// quota reasons.
const REFUSAL_BYTES_MAX: u64 = 64 << 10;

/// How failed requests are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per request, the first included.
    pub attempts_max: u32,
    /// The first back-off; each retry doubles it.
    pub backoff_base: Duration,
    /// The longest back-off between two tries.
    pub backoff_max: Duration,
    /// The longest wait a `Retry-After` or reset header may ask for before the run gives up
    /// and reports [`DriverError::RateLimited`] to the scheduler instead.
    pub retry_after_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 8,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            retry_after_max: Duration::from_secs(120),
        }
    }
}

/// One run's time limit, request count and rate-limit refusals.
#[derive(Debug)]
pub(crate) struct Budget {
    deadline: Instant,
    limit: Duration,
    requests: AtomicU64,
    rate_limited: AtomicU64,
}

impl Budget {
    /// A budget of `limit` from now.
    pub(crate) fn new(limit: Duration) -> Budget {
        Budget {
            deadline: Instant::now() + limit,
            limit,
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
        }
    }

    /// Requests the IdP refused as over its rate limit (each was retried or failed the run).
    pub(crate) fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// HTTP requests sent so far, retries and token requests included.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn remaining(&self) -> Result<Duration, DriverError> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(DriverError::Deadline { limit: self.limit });
        }
        Ok(remaining)
    }
}

/// A request, kept whole so that it can be sent again.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Body,
}

/// A request body.
#[derive(Clone)]
pub(crate) enum Body {
    Empty,
    Json(serde_json::Value),
    Form(Vec<(&'static str, String)>),
}

/// A form's values stay out: token requests carry client secrets and signed assertions in them.
impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Empty => f.write_str("Empty"),
            Body::Json(value) => f.debug_tuple("Json").field(value).finish(),
            Body::Form(fields) => {
                let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
                f.debug_tuple("Form").field(&names).finish()
            }
        }
    }
}

impl Request {
    pub(crate) fn get(url: Url) -> Request {
        Request {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub(crate) fn post(url: Url, body: Body) -> Request {
        Request {
            method: Method::POST,
            url,
            headers: Vec::new(),
            body,
        }
    }

    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.headers.push((name, value));
        self
    }
}

/// A successful response.
pub(crate) struct Response {
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// The body stays out: a token endpoint's answer carries the access token.
impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("url", &self.url.as_str())
            .field("headers", &self.headers)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Response {
    /// The body as `T`; a body of another shape is [`DriverError::InvalidResponse`].
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, DriverError> {
        serde_json::from_slice(&self.body).map_err(|error| DriverError::InvalidResponse {
            url: self.url.to_string(),
            message: error.to_string(),
        })
    }
}

/// A status that is not success: either worth another try, or final.
pub(crate) enum Refusal {
    /// Try again, after this long if the IdP said.
    Retry {
        retry_after: Option<Duration>,
        error: DriverError,
    },
    /// Give up.
    Fail(DriverError),
}

/// The HTTP client of one integration.
#[derive(Debug)]
pub(crate) struct Http {
    transport: Transport,
    request_timeout: Duration,
    policy: RetryPolicy,
    pacer: Pacer,
}

/// Where requests go.
#[derive(Debug)]
enum Transport {
    /// The IdP, over the network.
    Network(reqwest::Client),
    /// Bodies written in advance, one per request in order, all with status 200: the IdP of the
    /// fuzz targets (`internals`).
    #[cfg(feature = "internals")]
    Scripted(std::sync::Mutex<std::collections::VecDeque<Bytes>>),
}

impl Http {
    /// A client whose requests take `bodies` as their answers, one each in order; a request
    /// past the last is answered 404.
    #[cfg(feature = "internals")]
    pub(crate) fn scripted(bodies: Vec<Bytes>) -> Http {
        Http {
            transport: Transport::Scripted(std::sync::Mutex::new(bodies.into())),
            request_timeout: Duration::from_secs(1),
            policy: RetryPolicy::default(),
            pacer: Pacer::new(1),
        }
    }

    /// A client over the network whose requests, at most `in_flight` at once, take at most
    /// `request_timeout` each and are retried following `policy`.
    pub(crate) fn new(request_timeout: Duration, policy: RetryPolicy, in_flight: usize) -> Http {
        let client = reqwest::Client::builder()
            .connect_timeout(request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("openzro-idpsync/", env!("CARGO_PKG_VERSION")))
            // Pages are followed by the drivers, which check where they lead; a redirect
            // must never carry credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client without custom TLS settings builds");
        Http {
            transport: Transport::Network(client),
            request_timeout,
            policy,
            pacer: Pacer::new(in_flight),
        }
    }

    /// Sends `request` once: the response, or why not.
    async fn send_once(&self, request: &Request, budget: &Budget) -> Result<Response, Refusal> {
        let remaining = budget.remaining().map_err(Refusal::Fail)?;
        budget.requests.fetch_add(1, Ordering::Relaxed);
        // Without the `internals` feature the network is the only transport.
        #[cfg_attr(not(feature = "internals"), allow(clippy::infallible_destructuring_match))]
        let client = match &self.transport {
            Transport::Network(client) => client,
            #[cfg(feature = "internals")]
            Transport::Scripted(bodies) => return scripted_answer(bodies, request),
        };
        let mut builder = client
            .request(request.method.clone(), request.url.clone())
            .timeout(self.request_timeout.min(remaining));
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        builder = match &request.body {
            Body::Empty => builder,
            Body::Json(value) => builder.json(value),
            Body::Form(fields) => builder.form(fields),
        };
        let url = request.url.to_string();
        let transport = |error: reqwest::Error| Refusal::Retry {
            retry_after: None,
            error: DriverError::Transport {
                url: url.clone(),
                message: error_chain(&error),
            },
        };
        let mut response = builder.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        self.pacer.observe(&headers, Instant::now(), SystemTime::now());
        if !status.is_success() {
            // Only the start matters; the rest is left unread.
            let (body, _) = read_body(&mut response, REFUSAL_BYTES_MAX).await.map_err(transport)?;
            return Err(classify(&url, status, &headers, &body));
        }
        let too_large = || {
            Refusal::Fail(DriverError::ResponseTooLarge {
                url: url.clone(),
                limit_bytes: RESPONSE_BYTES_MAX,
            })
        };
        if response
            .content_length()
            .is_some_and(|length| length > RESPONSE_BYTES_MAX)
        {
            return Err(too_large());
        }
        match read_body(&mut response, RESPONSE_BYTES_MAX).await.map_err(transport)? {
            (body, Whole::Yes) => Ok(Response {
                url: request.url.clone(),
                headers,
                body,
            }),
            (_, Whole::No) => Err(too_large()),
        }
    }

    /// Sends `request`, retrying what is worth retrying within the budget. A 401 is returned
    /// at once: the caller decides whether fresh credentials are worth a second try.
    pub(crate) async fn send(&self, request: Request, budget: &Budget) -> Result<Response, DriverError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.paced(&request.url, budget).await?;
            let (retry_after, error) = match self.send_once(&request, budget).await {
                Ok(response) => return Ok(response),
                Err(Refusal::Fail(error)) => return Err(error),
                Err(Refusal::Retry { retry_after, error }) => (retry_after, error),
            };
            let rate_limited = matches!(error, DriverError::RateLimited { .. });
            if rate_limited {
                budget.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            if attempt >= self.policy.attempts_max {
                return Err(error);
            }
            if retry_after.is_some_and(|after| after > self.policy.retry_after_max) {
                return Err(error);
            }
            let wait = match retry_after {
                Some(after) => after.saturating_add(jitter(after / 10)),
                None => {
                    let backoff = self
                        .policy
                        .backoff_base
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(self.policy.backoff_max);
                    backoff / 2 + jitter(backoff / 2)
                }
            };
            if budget.remaining()? <= wait {
                return Err(error);
            }
            tracing::debug!(url = %request.url, attempt, wait_ms = wait.as_millis() as u64, %error, "retrying");
            if rate_limited {
                // A rate limit holds back the integration's other requests too.
                self.pacer.hold(Instant::now(), wait);
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits until the pacer lets a request start; a wait past the policy's longest or past
    /// the budget fails instead.
    async fn paced(&self, url: &Url, budget: &Budget) -> Result<(), DriverError> {
        let wait = self.pacer.wait(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        if wait > self.policy.retry_after_max {
            return Err(DriverError::RateLimited {
                url: url.to_string(),
                retry_after: Some(wait),
            });
        }
        if budget.remaining()? <= wait {
            return Err(DriverError::Deadline { limit: budget.limit });
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// The next scripted body, as a response to `request`.
#[cfg(feature = "internals")]
fn scripted_answer(
    bodies: &std::sync::Mutex<std::collections::VecDeque<Bytes>>,
    request: &Request,
) -> Result<Response, Refusal> {
    match bodies.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
        Some(body) => Ok(Response {
            url: request.url.clone(),
            headers: HeaderMap::new(),
            body,
        }),
        None => Err(Refusal::Fail(DriverError::Status {
            url: request.url.to_string(),
            status: 404,
            message: "the script has no answer left".to_owned(),
        })),
    }
}

/// Whether a body was read to its end.
enum Whole {
    Yes,
    No,
}

/// Reads `response`'s body as it arrives, keeping at most `limit` bytes: the body and
/// [`Whole::Yes`], or its first `limit` bytes and [`Whole::No`] when the server sent more (the
/// rest is never read). Nothing is allocated on the server's word: the buffer grows with what
/// actually arrives.
async fn read_body(response: &mut reqwest::Response, limit: u64) -> Result<(Bytes, Whole), reqwest::Error> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), Whole::No));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), Whole::Yes))
}

/// A random duration in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = rand::rng().random_range(0..=max.as_nanos().min(u128::from(u64::MAX)) as u64);
    Duration::from_nanos(nanos)
}

fn error_chain(error: &reqwest::Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Sorts a refused response into retry, re-authenticate, or give up.
pub(crate) fn classify(url: &str, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Refusal {
    let message = excerpt(body);
    let rate_limited = |retry_after| Refusal::Retry {
        retry_after,
        error: DriverError::RateLimited {
            url: url.to_owned(),
            retry_after,
        },
    };
    match status.as_u16() {
        429 => rate_limited(retry_after(headers, SystemTime::now())),
        403 if is_google_quota_error(body) => rate_limited(retry_after(headers, SystemTime::now())),
        401 => Refusal::Fail(DriverError::Unauthorized {
            url: url.to_owned(),
            status: 401,
            message,
        }),
        403 => Refusal::Fail(DriverError::Unauthorized {
            url: url.to_owned(),
            status: 403,
            message,
        }),
        500 | 502 | 503 | 504 => Refusal::Retry {
            retry_after: retry_after(headers, SystemTime::now()),
            error: DriverError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                message,
            },
        },
        code => Refusal::Fail(DriverError::Status {
            url: url.to_owned(),
            status: code,
            message,
        }),
    }
}

/// The start of a body, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut text: String = text.chars().take(300).collect();
    if body.len() > text.len() {
        text.push('…');
    }
    text
}

/// Google answers quota exhaustion with 403 and a reason in the error body.
fn is_google_quota_error(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let reasons = value
        .pointer("/error/errors")
        .and_then(|errors| errors.as_array())
        .into_iter()
        .flatten()
        .filter_map(|error| error.get("reason").and_then(|reason| reason.as_str()));
    let mut reasons = reasons;
    reasons.any(|reason| matches!(reason, "userRateLimitExceeded" | "quotaExceeded" | "rateLimitExceeded"))
}

/// A header's value as trimmed text, if it is text.
pub(crate) fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
}

/// When the vendor's rate window resets, in epoch seconds: Okta's `X-Rate-Limit-Reset`, Auth0's
/// `X-RateLimit-Reset`.
pub(crate) fn epoch_reset(headers: &HeaderMap) -> Option<u64> {
    ["x-rate-limit-reset", "x-ratelimit-reset"]
        .into_iter()
        .find_map(|name| header_text(headers, name)?.parse().ok())
}

/// How long the IdP asked to wait: `Retry-After` (seconds or an HTTP date), or a reset time in
/// epoch seconds (Okta `X-Rate-Limit-Reset`, Auth0 `X-RateLimit-Reset`). A reset beyond what
/// the clock can hold is [`Duration::MAX`]: whatever the IdP sends, nothing here overflows,
/// and what the wait means is for the caller to bound.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(value) = header_text(headers, "retry-after") {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(date) = httpdate::parse_http_date(value) {
            return Some(date.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    let reset_seconds = epoch_reset(headers)?;
    Some(
        match SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(reset_seconds)) {
            Some(reset) => reset.duration_since(now).unwrap_or(Duration::ZERO),
            None => Duration::MAX,
        },
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header map of `pairs`.
    pub(crate) fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn rate_limit_signals_of_each_vendor() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers(&[("x-rate-limit-reset", "1700000012")]), now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "1700000003")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(&headers(&[("x-ratelimit-reset", "1600000000")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers(&[]), now), None);
    }

    /// Hardening issue, must-fix 9: a request's `Debug` print showed its `Authorization`
    /// header, and a token request's form its client secret.
    #[test]
    fn a_request_s_debug_shows_no_credential() {
        let url = Url::parse("https://idp.example.com/oauth/token").unwrap();
        let request = Request::post(
            url,
            Body::Form(vec![
                ("grant_type", "client_credentials".to_owned()),
                ("client_secret", "s3cret-in-the-form".to_owned()),
            ]),
        )
        .header(
            reqwest::header::AUTHORIZATION,
            crate::auth::header_value("Bearer s3cret-in-the-header").unwrap(),
        );
        let printed = format!("{request:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(
            printed.contains("client_secret") && printed.contains("authorization"),
            "{printed}"
        );
        let response = Response {
            url: Url::parse("https://idp.example.com/oauth/token").unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(br#"{"access_token":"s3cret-token"}"#),
        };
        let printed = format!("{response:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
    }

    /// Hardening issue, must-fix 7: a reset time beyond what the clock can hold overflowed
    /// and panicked.
    #[test]
    fn a_reset_beyond_the_clock_is_the_longest_wait() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            retry_after(&headers(&[("x-rate-limit-reset", &u64::MAX.to_string())]), now),
            Some(Duration::MAX)
        );
    }

    #[test]
    fn google_quota_errors_are_rate_limits() {
        let body = br#"{"error":{"code":403,"message":"x","errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"x"}]}}"#;
        assert!(matches!(
            classify("u", StatusCode::FORBIDDEN, &HeaderMap::new(), body),
            Refusal::Retry { .. }
        ));
        let denied = br#"{"error":{"code":403,"message":"x","errors":[{"domain":"global","reason":"forbidden","message":"x"}]}}"#;
        assert!(matches!(
            classify("u", StatusCode::FORBIDDEN, &HeaderMap::new(), denied),
            Refusal::Fail(DriverError::Unauthorized { status: 403, .. })
        ));
        assert!(matches!(
            classify("u", StatusCode::BAD_GATEWAY, &HeaderMap::new(), b""),
            Refusal::Retry { .. }
        ));
        assert!(matches!(
            classify("u", StatusCode::NOT_FOUND, &HeaderMap::new(), b""),
            Refusal::Fail(DriverError::Status { status: 404, .. })
        ));
    }
}
