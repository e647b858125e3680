//! The page frame every console page shares (title, navigation, the tenant, sign-out), the
//! style sheet embedded in the binary, error pages and small formatting helpers.

use std::time::SystemTime;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use idpsync_storage::Timestamp;
use maud::{DOCTYPE, Markup, html};

use super::MOUNT;
use super::signed_in::SignedIn;

/// The console's style sheet, served at `/admin/assets/console.css`.
const STYLE_SHEET: &str = include_str!("assets/console.css");

/// `GET /admin/assets/console.css`.
pub(super) async fn style_sheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE_SHEET,
    )
        .into_response()
}

/// The sections in the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Tenant,
    Integrations,
    Audit,
    Log,
}

const SECTIONS: [(Section, &str, &str); 4] = [
    (Section::Tenant, "/tenant", "Tenant & tokens"),
    (Section::Integrations, "/integrations", "Integrations"),
    (Section::Audit, "/audit", "Audit"),
    (Section::Log, "/log", "Log"),
];

/// A console path: `/admin` followed by `path`.
pub(super) fn at(path: &str) -> String {
    format!("{MOUNT}{path}")
}

/// The hidden field that carries the session's CSRF token in every form.
pub(super) fn csrf_field(signed_in: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed_in.session.csrf); }
}

/// A whole page for a signed-in operator.
pub(super) fn page(signed_in: &SignedIn, section: Section, title: &str, body: Markup) -> Response {
    let tenant = signed_in.tenant.id().to_string();
    frame(
        title,
        html! {
            header.top {
                span.brand { "IdP-Sync" }
                nav {
                    @for (target, path, label) in SECTIONS {
                        a href=(at(path)) class=[(target == section).then_some("current")] { (label) }
                    }
                }
                span.who { "tenant " strong #tenant-name { (tenant) } }
                form.inline method="post" action=(at("/sign-out")) {
                    (csrf_field(signed_in))
                    button.link type="submit" { "Sign out" }
                }
            }
            main {
                h1 { (title) }
                (body)
            }
        },
    )
}

/// The HTML document around `body`.
pub(super) fn frame(title: &str, body: Markup) -> Response {
    let document = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · IdP-Sync console" }
                link rel="stylesheet" href=(at("/assets/console.css"));
            }
            body { (body) }
        }
    };
    Html(document.into_string()).into_response()
}

/// What went wrong, answered as an error page.
pub(super) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    /// A failure answered with `status` and `message`.
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        failure(self.status, &self.message)
    }
}

/// An error page with `status`.
pub(super) fn failure(status: StatusCode, message: &str) -> Response {
    let mut response = frame(
        "Not done",
        html! {
            main {
                h1 { "Not done" }
                p.error #error { (message) }
                p { a href=(at("/")) { "Back to the console" } }
            }
        },
    );
    *response.status_mut() = status;
    response
}

/// A moment as RFC 3339, or a dash.
pub(super) fn moment(at: Option<SystemTime>) -> String {
    at.and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_micros()).ok())
        .map_or_else(|| "—".to_owned(), |micros| Timestamp(micros).to_rfc3339())
}

/// A notice above a page's content, after an action redirected there.
pub(super) fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(text) = text {
            p.notice #notice { (text) }
        }
    }
}
