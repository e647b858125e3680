//! The small value types every layer shares: tenant names, log positions, timestamps, event ids
//! and chain hashes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The name of a tenant: one company whose identities are kept apart from every other's.
///
/// 1 to 64 characters from `a-z`, `0-9`, `-`, `_` and `.`, starting with a letter or digit, so a
/// tenant name is safe in file names, URLs and log lines.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid tenant name {name:?}: use 1 to 64 characters from a-z, 0-9, '-', '_' and '.', starting with a letter or digit"
)]
pub struct InvalidTenantId {
    /// The rejected name.
    pub name: String,
}

impl TenantId {
    /// The longest tenant name accepted.
    pub const LENGTH_MAX: usize = 64;

    /// The tenant that always exists.
    pub fn default_tenant() -> TenantId {
        TenantId("default".to_owned())
    }

    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<TenantId, InvalidTenantId> {
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if first_ok && name.len() <= Self::LENGTH_MAX && name.chars().all(valid_char) {
            Ok(TenantId(name.to_owned()))
        } else {
            Err(InvalidTenantId { name: name.to_owned() })
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = InvalidTenantId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::new(s)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        TenantId::new(&name).map_err(serde::de::Error::custom)
    }
}

/// A position in one tenant's log. The first record is `Seq(1)`; positions are dense, so the
/// record after `n` is always `n + 1`. `Seq::ZERO` means "before the first record".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first record: the position of an empty log.
    pub const ZERO: Seq = Seq(0);

    /// The position after this one.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// The position `count` records after this one.
    pub fn plus(self, count: u64) -> Seq {
        Seq(self.0 + count)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A point in time: microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// Why a string is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {text:?}: expected RFC 3339 such as 2026-03-01T09:30:00Z (or, for a moment the CLI or the API asks for, a date such as 2026-03-01)"
)]
pub struct InvalidTimestamp {
    /// The rejected text.
    pub text: String,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX))
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Parses an RFC 3339 timestamp (`2026-03-01T09:30:00Z`, `2026-03-01T10:30:00.5+01:00`).
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, InvalidTimestamp> {
        let parsed = time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|_| InvalidTimestamp { text: text.to_owned() })?;
        let micros = parsed.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| InvalidTimestamp { text: text.to_owned() })
    }

    /// Parses a moment as the CLI and the management API take one: RFC 3339
    /// (`2026-03-01T09:30:00Z`) or a plain date (`2026-03-01`, midnight UTC).
    pub fn parse_moment(text: &str) -> Result<Timestamp, InvalidTimestamp> {
        Timestamp::parse_rfc3339(text).or_else(|_| {
            let date = text.trim();
            let is_date = date.len() == 10
                && date.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if !is_date {
                return Err(InvalidTimestamp { text: text.to_owned() });
            }
            Timestamp::parse_rfc3339(&format!("{date}T00:00:00Z"))
                .map_err(|_| InvalidTimestamp { text: text.to_owned() })
        })
    }

    /// Formats as RFC 3339 in UTC with microseconds, e.g. `2026-03-01T09:30:00.000001Z`.
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(moment) => {
                let format = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
                );
                moment.format(&format).unwrap_or_else(|_| self.0.to_string())
            }
            Err(_) => self.0.to_string(),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// The unique id of one event (a UUID v7). It names the event, never its place in the log: that
/// is the [`Seq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    /// A fresh UUID v7.
    pub fn new() -> EventId {
        EventId(uuid::Uuid::now_v7())
    }
}

impl Default for EventId {
    fn default() -> Self {
        EventId::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The version of the envelope a payload is encoded in. The storage layer carries it and
/// chains it; only the engine knows what each version means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SchemaVersion(pub u16);

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A 32-byte BLAKE3 digest: a link of the hash chain, or the hash of a state snapshot.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// All zero bytes: the chain value before the first record.
    pub const ZERO: Hash32 = Hash32([0; 32]);

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Hash32> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
        }
        Some(Hash32(bytes))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_are_checked() {
        assert!(TenantId::new("default").is_ok());
        assert!(TenantId::new("acme-eu.prod_1").is_ok());
        for bad in ["", "Acme", "-acme", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(TenantId::new(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn a_moment_is_rfc3339_or_a_date() {
        let midnight = Timestamp::parse_moment("2026-03-01").unwrap();
        assert_eq!(midnight, Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap());
        assert_eq!(
            Timestamp::parse_moment("2026-03-01T09:30:00+01:00").unwrap(),
            Timestamp::parse_rfc3339("2026-03-01T08:30:00Z").unwrap()
        );
        for bad in ["yesterday", "2026-3-1", "2026-13-01", "01/03/2026", "2026-03-01T"] {
            let error = Timestamp::parse_moment(bad).unwrap_err().to_string();
            assert!(
                error.contains("RFC 3339") && error.contains("2026-03-01"),
                "{bad}: {error}"
            );
        }
        assert!(
            Timestamp::parse_rfc3339("2026-03-01").is_err(),
            "SCIM's dateTime stays RFC 3339"
        );
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        let moment = Timestamp::parse_rfc3339("2026-03-01T09:30:00.123456Z").unwrap();
        assert_eq!(moment.to_rfc3339(), "2026-03-01T09:30:00.123456Z");
        let offset = Timestamp::parse_rfc3339("2026-03-01T10:30:00.123456+01:00").unwrap();
        assert_eq!(offset, moment);
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = Hash32(*blake3::hash(b"x").as_bytes());
        assert_eq!(Hash32::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(Hash32::from_hex("zz"), None);
    }
}
