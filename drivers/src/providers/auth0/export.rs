//! Auth0's users-export job, for full listings of tenants larger than `/users` reaches: `POST
//! /jobs/users-exports` (NDJSON, the fields a listing reads), `GET /jobs/{id}` until the job is
//! completed, then its file: gzip, on another host, behind a pre-signed URL that takes no
//! credentials. Needs `read:users` only.

use std::io::Read;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::client::{IdpClient, Run};
use crate::error::DriverError;
use crate::http::Request;

/// The user fields asked for: those a listing reads.
const FIELDS: [&str; 7] = [
    "user_id",
    "email",
    "username",
    "given_name",
    "family_name",
    "name",
    "blocked",
];
/// The most an export may decompress to; a larger file is refused, not read.
const MAX_EXPORT_BYTES: u64 = 1 << 30;
/// The first wait between two polls of the job; each next one is twice as long, up to
/// [`LONGEST_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(250);
const LONGEST_POLL: Duration = Duration::from_secs(10);

/// A job, as far as the listing reads it.
#[derive(Deserialize)]
struct Job {
    id: String,
    status: String,
    location: Option<String>,
}

/// Every user of the tenant, by an export job. A job that fails, or whose file cannot be
/// read, fails the run: nothing is applied.
pub(super) async fn export_users<T: DeserializeOwned>(
    client: &IdpClient,
    run: &Run<'_>,
) -> Result<Vec<T>, DriverError> {
    let fields: Vec<_> = FIELDS.iter().map(|name| json!({"name": name})).collect();
    let created = client.url("/jobs/users-exports", &[]);
    let body = json!({"format": "json", "fields": fields});
    let job: Job = client.post(created.clone(), body, &[], run).await?;
    let invalid = |message: String| DriverError::InvalidResponse {
        url: created.to_string(),
        message,
    };
    if job.id.is_empty()
        || !job
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid(format!("the export job's id {:?} is not Auth0's", job.id)));
    }
    let mut wait = FIRST_POLL;
    let location = loop {
        let (polled, _): (Job, _) = client
            .get(client.url(&format!("/jobs/{}", job.id), &[]), &[], run)
            .await?;
        match polled.status.as_str() {
            "completed" => {
                break polled
                    .location
                    .ok_or_else(|| invalid(format!("the export job {} completed without a location", job.id)))?;
            }
            "pending" | "processing" => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(LONGEST_POLL);
            }
            other => {
                return Err(DriverError::PartialListing {
                    resource: "users (export job)".to_owned(),
                    reason: format!("Auth0's export job {} ended {other}", job.id),
                });
            }
        }
    };
    let url = Url::parse(&location).map_err(|error| invalid(format!("the export's location: {error}")))?;
    // https, unless the API root itself is plain http (allowed for tests only).
    if url.scheme() != "https" && url.scheme() != client.base.scheme() {
        return Err(invalid(format!("the export's location {url} is not https")));
    }
    // A pre-signed URL: the Management API's token is not for its host.
    let file = client.http.send(Request::get(url.clone()), run.budget).await?;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&file.body[..])
        .take(MAX_EXPORT_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|error| invalid(format!("the export file is not gzip: {error}")))?;
    if text.len() as u64 > MAX_EXPORT_BYTES {
        return Err(DriverError::ResponseTooLarge {
            url: url.to_string(),
            limit_bytes: MAX_EXPORT_BYTES,
        });
    }
    text.split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(|line| {
            serde_json::from_slice(line).map_err(|error| DriverError::InvalidResponse {
                url: url.to_string(),
                message: format!("a line of the export: {error}"),
            })
        })
        .collect()
}
