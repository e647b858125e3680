//! The crate's internals for the fuzz targets (`fuzz/`), with the `internals` feature: a listing
//! of any vendor read from scripted answers instead of the network, so that arbitrary bytes reach
//! each vendor's decoding and listing code (token responses included) as an IdP would send them,
//! and the parsers of what an IdP says in headers (rate-limit waits, refusals, `Link` paging).
//! Not an API: it follows the crate's insides and may change with any commit.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use idpsync_engine::reconcile::Listing;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::client::Run;
use crate::driver::Driver;
use crate::http::{self, Budget, Http, Refusal};
use crate::paging;
use crate::{Cursor, DriverError, IntegrationConfig};

/// Lists `config`'s IdP (everything, or the changes since `since`) with `answers` as the bodies
/// of its requests, one each in order, all with status 200 and no headers; a request past the
/// last is answered 404. The listing, or why it failed.
pub async fn list_scripted(
    config: IntegrationConfig,
    answers: Vec<Vec<u8>>,
    since: Option<&Cursor>,
) -> Result<Listing, DriverError> {
    let http = Http::scripted(answers.into_iter().map(Bytes::from).collect());
    let driver = Driver::with_http(config, http)?;
    let budget = Budget::new(Duration::from_secs(60));
    let run = Run::new(&budget, driver.selection());
    Ok(driver.fetch(&run, since).await?.listing)
}

/// Headers from `(name, value)` pairs; pairs a header cannot carry are left out.
fn header_map(headers: &[(&str, &[u8])]) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            ))
        })
        .collect()
}

/// How long an IdP answering with `headers` at `now` asks to wait, as the retry loop reads it.
pub fn rate_limit_wait(headers: &[(&str, &[u8])], now: SystemTime) -> Option<Duration> {
    http::retry_after(&header_map(headers), now)
}

/// What a refused answer (a `status` other than success, with `headers` and `body`) becomes:
/// whether it is worth another try, and the error; `None` for a number that is no status.
pub fn refusal(status: u16, headers: &[(&str, &[u8])], body: &[u8]) -> Option<(bool, DriverError)> {
    let status = StatusCode::from_u16(status).ok()?;
    Some(
        match http::classify("https://idp.example.com/", status, &header_map(headers), body) {
            Refusal::Retry { error, .. } => (true, error),
            Refusal::Fail(error) => (false, error),
        },
    )
}

/// The `rel="next"` target of `Link` header values, as Okta's paging reads it.
pub fn next_link(values: &[&[u8]]) -> Option<String> {
    let headers: Vec<(&str, &[u8])> = values.iter().map(|value| ("link", *value)).collect();
    paging::next_link(&header_map(&headers))
}
