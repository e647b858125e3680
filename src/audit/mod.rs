//! The offboarding audit's renderings: a user's chain and the leavers' report, made by
//! [`idpsync_engine::audit`], written out as text for a terminal ([`text`]), one
//! self-contained HTML page ([`html`]) or JSON ([`json`]).

pub mod html;
pub mod json;
pub mod text;

use serde::Serialize;

/// How an audit is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text for a terminal.
    Text,
    /// JSON for machines.
    Json,
    /// One self-contained HTML page.
    Html,
}

/// Formats microseconds for people: `850 µs`, `12.4 ms`, `3.2 s`, `4 min 10 s`.
pub fn duration_text(micros: i64) -> String {
    match micros {
        m if m < 1_000 => format!("{m} µs"),
        m if m < 1_000_000 => format!("{:.1} ms", m as f64 / 1_000.0),
        m if m < 60_000_000 => format!("{:.1} s", m as f64 / 1_000_000.0),
        m => format!("{} min {} s", m / 60_000_000, (m % 60_000_000) / 1_000_000),
    }
}
