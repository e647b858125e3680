//! The harness of the management API tests: the whole service (`idpsync::server::service`:
//! SCIM, the API, `/metrics`) on `127.0.0.1:0` over an in-memory log, and a small SSE client
//! that reads the change stream item by item.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use idpsync::api::{ApiSettings, ApiState};
use idpsync::engine::{Engine, TenantSettings};
use idpsync::server::HttpLimits;
use idpsync::storage::TenantId;
use idpsync::token_book::TokenBook;
use idpsync::tokens::{TokenAuthenticator, TokenKind, TokenStore};
use serde_json::Value;

use crate::common::{Client, TestServer};

/// The SCIM PATCH schema.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A running service: SCIM, the API and `/metrics`.
pub struct Service {
    server: TestServer,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub engine: Arc<Engine>,
    pub tokens: TokenStore,
}

impl Service {
    pub async fn start() -> Service {
        Service::start_limited(HttpLimits::default()).await
    }

    /// The service within `limits`.
    pub async fn start_limited(limits: HttpLimits) -> Service {
        Service::start_with(TenantSettings::default(), limits).await
    }

    /// The service with the tenants' `settings`.
    pub async fn start_with_settings(settings: TenantSettings) -> Service {
        Service::start_with(settings, HttpLimits::default()).await
    }

    async fn start_with(settings: TenantSettings, limits: HttpLimits) -> Service {
        let metrics = idpsync::metrics::install().unwrap();
        let server = TestServer::start_with_settings(settings, limits, |engine, tokens| {
            let api = ApiState::new(
                Arc::clone(&engine),
                Arc::new(TokenAuthenticator::admin(tokens.clone()).unwrap()),
                ApiSettings {
                    tokens: Some(TokenBook::File(tokens.clone())),
                    heartbeat: Duration::from_millis(200),
                    ..ApiSettings::default()
                },
            )
            .unwrap();
            let scim = Arc::new(TokenAuthenticator::new(tokens.clone()).unwrap());
            let router =
                idpsync::server::service(engine, scim, api.clone(), metrics, &crate::common::with_limits(limits));
            (router, Box::new(move || api.close_streams()))
        })
        .await;
        Service {
            origin: server.origin.clone(),
            engine: Arc::clone(&server.engine),
            tokens: server.tokens.clone(),
            server,
        }
    }

    /// A SCIM client with a new token of `tenant`.
    pub fn scim(&self, tenant: &str) -> Client {
        self.server.client(tenant)
    }

    /// A new admin token of `tenant`.
    pub fn admin_token(&self, tenant: &str) -> String {
        self.tokens
            .create(&TenantId::new(tenant).unwrap(), "mgmt", TokenKind::Admin)
            .unwrap()
            .1
    }

    /// An API client of `tenant`'s, rooted at `/api/v1/tenants/{tenant}`.
    pub fn api(&self, tenant: &str) -> Client {
        Client::new(
            &format!("{}/api/v1/tenants/{tenant}", self.origin),
            Some(self.admin_token(tenant)),
        )
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// One Server-Sent Event.
#[derive(Clone, Debug, PartialEq)]
pub struct SseItem {
    pub id: String,
    pub event: String,
    pub data: Value,
}

/// A change-stream connection, read item by item.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

impl SseClient {
    /// Connects to `url` with `token`, and `Last-Event-ID` if given.
    pub async fn connect(url: &str, token: &str, last_event_id: Option<&str>) -> SseClient {
        let mut request = reqwest::Client::new().get(url).bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseClient {
            response,
            buffer: String::new(),
        }
    }

    /// The next item (comments and heartbeats skipped); `None` when the stream ended or
    /// nothing came within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SseItem> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(item) = parse(&block) {
                    return Some(item);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?;
            match chunk.ok()? {
                Some(bytes) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }

    /// Whether the stream ends within `wait`, reading past any items still coming.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None) | Err(_)) => return true,
            }
        }
    }

    /// The next item, which must come within 10 seconds.
    pub async fn next(&mut self) -> SseItem {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an item within 10 s")
    }
}

fn parse(block: &str) -> Option<SseItem> {
    let (mut id, mut event, mut data) = (None, None, String::new());
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("event:") {
            event = Some(value.trim().to_owned());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
    Some(SseItem {
        id: id?,
        event: event?,
        data: serde_json::from_str(&data).ok()?,
    })
}
