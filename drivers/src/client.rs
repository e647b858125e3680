//! [`IdpClient`]: how a provider reaches its IdP's API — one integration's HTTP client,
//! credentials and API root — and [`Run`], the budget and warnings of one run. Page-following
//! rules live in `paging`.

use std::sync::Mutex;

use idpsync_engine::reconcile::{Baseline, Listing, ListingScope};

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::error::DriverError;
use crate::http::{Body, Budget, Http, Request, Response};
use crate::members::Selection;

/// An IdP's API as one integration reaches it. Its `Debug` shows no credential (see `auth`).
#[derive(Debug)]
pub(crate) struct IdpClient {
    pub(crate) http: Http,
    pub(crate) auth: Auth,
    pub(crate) base: Url,
}

/// One run: its budget, which groups' members it fetches, and the warnings it collects for
/// the report.
pub(crate) struct Run<'b> {
    pub(crate) budget: &'b Budget,
    pub(crate) selection: Selection,
    /// What the run's listings compare their users with (see [`Baseline`]).
    baseline: Option<Baseline>,
    warnings: Mutex<Vec<String>>,
}

impl<'b> Run<'b> {
    /// A run within `budget` that fetches the members `selection` names.
    pub(crate) fn new(budget: &'b Budget, selection: Selection) -> Run<'b> {
        Run {
            budget,
            selection,
            baseline: None,
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// The run, its listings comparing their users with `baseline` as they are read.
    pub(crate) fn compared_with(self, baseline: Baseline) -> Run<'b> {
        Run {
            baseline: Some(baseline),
            ..self
        }
    }

    /// An empty listing of the given scope, for this run.
    pub(crate) fn listing(&self, scope: ListingScope) -> Listing {
        Listing::compared_with(scope, self.baseline.clone())
    }

    /// Notes something an operator should know that did not stop the run.
    pub(crate) fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).push(message);
    }

    /// The warnings so far.
    pub(crate) fn into_warnings(self) -> Vec<String> {
        self.warnings.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl IdpClient {
    /// `base` + `path`, with `query` (keys and values are encoded here).
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = joined(&self.base, path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A next-page URL from the IdP, accepted only on the API's own origin: credentials never
    /// follow a link elsewhere.
    pub(crate) fn next_url(&self, link: &str) -> Result<Url, DriverError> {
        let url = Url::parse(link).map_err(|error| DriverError::InvalidResponse {
            url: self.base.to_string(),
            message: format!("next-page link {link:?} is not an absolute URL: {error}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(DriverError::InvalidResponse {
                url: self.base.to_string(),
                message: format!("next-page link {link:?} leaves the API's origin"),
            });
        }
        Ok(url)
    }

    /// Sends a request with credentials, renewing an OAuth token once if the IdP refuses it.
    pub(crate) async fn send(
        &self,
        request: Request,
        extra: &[(HeaderName, HeaderValue)],
        run: &Run<'_>,
    ) -> Result<Response, DriverError> {
        let mut authorised = request.clone();
        authorised
            .headers
            .extend(self.auth.headers(&self.http, run.budget).await?);
        authorised.headers.extend(extra.iter().cloned());
        let first = self.http.send(authorised, run.budget).await;
        match first {
            Err(DriverError::Unauthorized { status: 401, .. }) if self.auth.invalidate() => {
                let mut retry = request;
                retry.headers.extend(self.auth.headers(&self.http, run.budget).await?);
                retry.headers.extend(extra.iter().cloned());
                self.http.send(retry, run.budget).await
            }
            other => other,
        }
    }

    /// GET `url` and parse the body.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        url: Url,
        extra: &[(HeaderName, HeaderValue)],
        run: &Run<'_>,
    ) -> Result<(T, Response), DriverError> {
        let response = self.send(Request::get(url), extra, run).await?;
        Ok((response.json()?, response))
    }

    /// POST a JSON body to `url` and parse the answer.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        url: Url,
        body: serde_json::Value,
        extra: &[(HeaderName, HeaderValue)],
        run: &Run<'_>,
    ) -> Result<T, DriverError> {
        let response = self.send(Request::post(url, Body::Json(body)), extra, run).await?;
        response.json()
    }
}

/// `base` with `path` (which starts with `/`) appended to its path: an API root and a path
/// under it, or a vendor's default endpoint under the configured root.
pub(crate) fn joined(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined_path = format!("{}{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined_path);
    url
}
