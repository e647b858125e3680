//! The harness of the black-box SCIM tests: the real server (`idpsync::server::run`) on
//! `127.0.0.1:0` over an in-memory log, tokens in a temporary data directory, and a small
//! HTTP client that speaks JSON.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use idpsync::engine::{Engine, LoggedEvent, TenantSettings};
use idpsync::server::HttpLimits;
use idpsync::storage::{LogStore, MemoryStore, Seq, TenantId};
use idpsync::tokens::{TokenAuthenticator, TokenKind, TokenStore};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

/// A running server.
pub struct TestServer {
    /// `http://127.0.0.1:PORT/scim/v2`.
    pub base: String,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
    pub engine: Arc<Engine>,
    pub tokens: TokenStore,
    _data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_limited(HttpLimits::default()).await
    }

    /// The SCIM server within `limits`.
    pub async fn start_limited(limits: HttpLimits) -> TestServer {
        TestServer::start_on(Arc::new(MemoryStore::new()), limits).await
    }

    /// The SCIM server on `store`, within `limits`.
    pub async fn start_on(store: Arc<dyn LogStore>, limits: HttpLimits) -> TestServer {
        TestServer::start_with_store(store, limits, |engine, tokens| {
            let authenticator = TokenAuthenticator::new(tokens.clone()).unwrap();
            (
                idpsync::server::router(engine, Arc::new(authenticator), &with_limits(limits)),
                Box::new(|| {}),
            )
        })
        .await
    }

    /// A server within `limits` of the router `build` makes from the engine and the token
    /// store; the hook it returns runs when the server begins to stop (to end streams that
    /// never finish).
    pub async fn start_with(
        limits: HttpLimits,
        build: impl FnOnce(Arc<Engine>, &TokenStore) -> (axum::Router, Box<dyn FnOnce() + Send>),
    ) -> TestServer {
        TestServer::start_with_settings(TenantSettings::default(), limits, build).await
    }

    /// [`TestServer::start_with`], with the tenants' `settings`.
    pub async fn start_with_settings(
        settings: TenantSettings,
        limits: HttpLimits,
        build: impl FnOnce(Arc<Engine>, &TokenStore) -> (axum::Router, Box<dyn FnOnce() + Send>),
    ) -> TestServer {
        TestServer::start_with_store_and_settings(Arc::new(MemoryStore::new()), settings, limits, build).await
    }

    async fn start_with_store(
        store: Arc<dyn LogStore>,
        limits: HttpLimits,
        build: impl FnOnce(Arc<Engine>, &TokenStore) -> (axum::Router, Box<dyn FnOnce() + Send>),
    ) -> TestServer {
        TestServer::start_with_store_and_settings(store, TenantSettings::default(), limits, build).await
    }

    async fn start_with_store_and_settings(
        store: Arc<dyn LogStore>,
        settings: TenantSettings,
        limits: HttpLimits,
        build: impl FnOnce(Arc<Engine>, &TokenStore) -> (axum::Router, Box<dyn FnOnce() + Send>),
    ) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(store, settings).await.unwrap());
        let tokens = TokenStore::new(data_dir.path());
        let (router, on_stop) = build(Arc::clone(&engine), &tokens);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            idpsync::server::run(listener, router, &limits, async {
                let _ = stopped.await;
                on_stop();
            })
            .await
            .unwrap();
        });
        TestServer {
            base: format!("http://{address}/scim/v2"),
            origin: format!("http://{address}"),
            engine,
            tokens,
            _data_dir: data_dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A client with a new SCIM token of `tenant`.
    pub fn client(&self, tenant: &str) -> Client {
        let (_, secret) = self
            .tokens
            .create(&TenantId::new(tenant).unwrap(), "test", TokenKind::Scim)
            .unwrap();
        Client::new(&self.base, Some(secret))
    }

    /// Every event of `tenant`'s log, in order.
    pub async fn events(&self, tenant: &str) -> Vec<LoggedEvent> {
        let records = self
            .engine
            .store()
            .read(&TenantId::new(tenant).unwrap(), Seq(1), 1_000_000)
            .await
            .unwrap();
        records
            .iter()
            .map(|record| idpsync::engine::event::decode_record(record).unwrap())
            .collect()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.engine.shutdown().await;
    }
}

/// The service's default settings with `limits` for the HTTP server.
pub fn with_limits(limits: HttpLimits) -> idpsync::server::ServiceSettings {
    idpsync::server::ServiceSettings {
        http: limits,
        ..idpsync::server::ServiceSettings::default()
    }
}

/// A response: status, headers, JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Answer {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `id` of the resource in the body.
    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("an id").to_owned()
    }
}

/// A JSON client of one token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    extra_headers: Vec<(String, String)>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.to_owned(),
            token,
            http: reqwest::Client::new(),
            extra_headers: Vec::new(),
        }
    }

    /// The same client with an extra header on every request.
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut client = self.clone();
        client.extra_headers.push((name.to_owned(), value.to_owned()));
        client
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Answer {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &self.extra_headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json; charset=utf-8")
                .body(serde_json::to_vec(body).unwrap());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

/// `?filter=` with the value percent-encoded as a client would (spaces as `+`, quotes
/// escaped).
pub fn filter(expression: &str) -> String {
    let mut encoded = String::new();
    for byte in expression.bytes() {
        match byte {
            b' ' => encoded.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => encoded.push(byte as char),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!("filter={encoded}")
}
