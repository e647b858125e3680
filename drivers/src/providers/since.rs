//! Incremental listings by time (Okta, authentik, Auth0): the [`Cursor::Since`] of a run that
//! starts now, the seconds a stored one stands for, and the vendors' time format.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::DriverError;
use crate::provider::Cursor;

/// Changes are asked for from this long before the previous run started, so that clock skew
/// and the IdP's own indexing lag cannot hide a change. Seeing a change twice costs nothing.
const SINCE_OVERLAP: Duration = Duration::from_secs(300);

/// The cursor of a run that starts now: changes since a little before now.
pub(super) fn since_now() -> Cursor {
    let now = OffsetDateTime::now_utc() - SINCE_OVERLAP;
    Cursor::Since {
        unix_seconds: now.unix_timestamp(),
        feed: None,
    }
}

/// A `Since` cursor as RFC 3339 with milliseconds (`2024-01-01T00:00:00.000Z`).
pub(super) fn rfc3339_millis(unix_seconds: i64) -> String {
    let time = OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let text = time.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
    // `format` writes whole seconds as `…:00Z`; the vendors document milliseconds.
    match text.strip_suffix('Z') {
        Some(stem) if !stem.contains('.') => format!("{stem}.000Z"),
        _ => text,
    }
}

/// The unix seconds of a `Since` cursor, or an error naming the cursor that does not fit.
pub(super) fn since_seconds(cursor: &Cursor) -> Result<i64, DriverError> {
    match cursor {
        Cursor::Since { unix_seconds, .. } => Ok(*unix_seconds),
        other => Err(DriverError::CursorExpired(format!(
            "a {other:?} cursor does not fit this IdP"
        ))),
    }
}

/// The position a `Since` cursor holds in the IdP's deletion feed, if it holds one.
pub(super) fn feed_position(cursor: &Cursor) -> Option<&str> {
    match cursor {
        Cursor::Since { feed, .. } => feed.as_deref(),
        Cursor::GraphDelta { .. } => None,
    }
}

/// An RFC 3339 time from an IdP as unix seconds, or `None` if it is not one.
pub(super) fn unix_seconds_of(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_times_use_the_vendor_format() {
        assert_eq!(rfc3339_millis(1_704_067_200), "2024-01-01T00:00:00.000Z");
        assert_eq!(unix_seconds_of("2024-01-01T00:00:00.123456Z"), Some(1_704_067_200));
        assert_eq!(unix_seconds_of("yesterday"), None);
    }
}
