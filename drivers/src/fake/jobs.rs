//! Auth0's users-export jobs as the fake runs them: `POST /api/v2/jobs/users-exports` creates
//! a job, each `GET /api/v2/jobs/{id}` moves it on (pending, processing, then completed or, when
//! the directory says so, failed), and a completed job's `location` is a gzip file of NDJSON on
//! another host (`localhost` rather than the fake's address), which is fetched without
//! credentials as Auth0's pre-signed URLs are.

use std::collections::HashMap;
use std::io::Write;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::vendors::auth0_user;
use super::{Call, Directory, json_response};

/// The path of the export files.
const EXPORTS: &str = "/exports/";

/// The jobs created so far, by id: how many times each was polled.
#[derive(Debug, Default)]
pub(super) struct Jobs {
    polls: HashMap<String, u32>,
}

impl Jobs {
    /// Creates or polls a job, if `call` asks to.
    pub(super) fn answer(
        &mut self,
        base: &str,
        call: &Call,
        directory: &Directory,
    ) -> Option<(Response, Option<Value>)> {
        let path = call.path.strip_prefix("/api/v2/jobs/")?;
        if path == "users-exports" && call.method == axum::http::Method::POST {
            let body = call.body.clone().unwrap_or(Value::Null);
            if body["format"] != "json" || !body["fields"].is_array() {
                return Some(json_response(
                    StatusCode::BAD_REQUEST,
                    vec![],
                    json!({"statusCode": 400, "error": "Bad Request", "message": "Payload validation error"}),
                ));
            }
            let id = format!("job_{}", self.polls.len() + 1);
            self.polls.insert(id.clone(), 0);
            return Some(json_response(
                StatusCode::CREATED,
                vec![],
                json!({"type": "users_export", "status": "pending", "format": "json", "fields": body["fields"], "id": id}),
            ));
        }
        let polls = self.polls.get_mut(path)?;
        *polls += 1;
        let mut job = json!({"type": "users_export", "id": path, "format": "json"});
        job["status"] = match (*polls, directory.export_jobs_fail) {
            (1, _) => json!("pending"),
            (2, _) => json!("processing"),
            (_, true) => json!("failed"),
            (_, false) => {
                let host = base.replace("127.0.0.1", "localhost");
                job["location"] = json!(format!("{host}{EXPORTS}{path}.json.gz"));
                json!("completed")
            }
        };
        Some(json_response(StatusCode::OK, vec![], job))
    }

    /// Serves a completed job's file: the directory's users, one JSON object a line, gzip. A
    /// request with credentials is refused, as a pre-signed URL refuses a second signature.
    pub(super) fn download(&self, call: &Call, directory: &Directory) -> Option<Response> {
        let id = call.path.strip_prefix(EXPORTS)?.strip_suffix(".json.gz")?;
        if !self.polls.contains_key(id) {
            return Some(StatusCode::NOT_FOUND.into_response());
        }
        if call.headers.contains_key("authorization") {
            return Some((StatusCode::BAD_REQUEST, "only one auth mechanism allowed").into_response());
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for user in directory.users() {
            let mut line = auth0_user(user);
            if let Some(fields) = line.as_object_mut() {
                fields.remove("created_at");
                fields.remove("updated_at");
            }
            writeln!(encoder, "{line}").expect("writing to memory does not fail");
        }
        let bytes = encoder.finish().expect("writing to memory does not fail");
        Some(([("content-type", "application/gzip")], bytes).into_response())
    }
}
