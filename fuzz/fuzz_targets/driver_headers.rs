//! What an IdP says in headers and refusals, on arbitrary bytes: rate-limit waits
//! (`Retry-After` in seconds or as a date, Okta's and Auth0's reset times), the sorting of a
//! refused answer into retry or failure (Google's quota reasons in the body), and Okta's `Link`
//! paging never panic or overflow, and a `Retry-After` in plain seconds is read exactly.
//!
//! Input: the first two bytes are the status; the rest, split at each NUL byte, are the values
//! of `Retry-After`, `X-Rate-Limit-Reset`, `X-RateLimit-Reset` and two `Link` headers, then the
//! body.
//!
//! Run: `cargo fuzz run --sanitizer none driver_headers` in `fuzz/` (with RUSTC_BOOTSTRAP=1 on
//! a stable toolchain, as `.ci/fuzz-smoke` does).

#![no_main]

use std::time::{Duration, SystemTime};

use idpsync_drivers::internals::{next_link, rate_limit_wait, refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((status, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut parts = rest.splitn(6, |byte| *byte == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (retry_after, okta_reset, auth0_reset) = (next(), next(), next());
    let links = [next(), next()];
    let body = next();
    let headers = [
        ("retry-after", retry_after),
        ("x-rate-limit-reset", okta_reset),
        ("x-ratelimit-reset", auth0_reset),
    ];
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let wait = rate_limit_wait(&headers, now);
    let digits = !retry_after.is_empty() && retry_after.iter().all(u8::is_ascii_digit);
    if let Some(seconds) = std::str::from_utf8(retry_after)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        && digits
    {
        assert_eq!(wait, Some(Duration::from_secs(seconds)));
    }
    let _ = refusal(u16::from_be_bytes(*status) % 1000, &headers, body);
    if let Some(target) = next_link(&links) {
        let texts: Vec<String> = links
            .iter()
            .map(|link| String::from_utf8_lossy(link).into_owned())
            .collect();
        assert!(
            texts.iter().any(|text| text.contains(&target)),
            "{target:?} from {texts:?}"
        );
    }
});
