//! What one client may hold of the server: thousands of idle connections, a client trickling a
//! request head (slowloris) or a body, the connection cap and requests in progress per token.
//! Hardening issue, must-fix 2: before these limits, one slow or idle client could starve the
//! server.

mod common;
mod support;

use std::time::{Duration, Instant};

use common::TestServer;
use idpsync::server::HttpLimits;
use serde_json::json;
use support::{Service, SseClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Limits short enough for a test to watch them act.
fn short_limits() -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_millis(800),
        request_body_timeout: Duration::from_millis(800),
        idle_timeout: Duration::from_secs(3),
        ..HttpLimits::default()
    }
}

fn address(server: &TestServer) -> String {
    server.origin.trim_start_matches("http://").to_owned()
}

/// Whether the server closes `stream` within `wait` (reads end or fail).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response (such as 408) may come before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

async fn create_users(client: &common::Client, prefix: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        client
            .post(
                "/Users",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{prefix}{n}")}),
            )
            .await
            .expect(201);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_and_a_slowloris_do_not_starve_a_scim_client() {
    // This process holds both ends of a few thousand connections.
    idpsync::server::raise_open_files_limit();
    let server = TestServer::start_limited(short_limits()).await;
    let client = server.client("acme");
    let alone = create_users(&client, "alone", 100).await;

    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(TcpStream::connect(address(&server)).await.unwrap());
    }
    let mut slowloris = TcpStream::connect(address(&server)).await.unwrap();
    let trickled_at = Instant::now();
    slowloris
        .write_all(b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let trickler = tokio::spawn(async move {
        // One byte of a header every 100 ms, for as long as the server takes it.
        for byte in b"X-Slow: ".iter().cycle().take(200) {
            if slowloris.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        slowloris
    });

    let crowded = create_users(&client, "crowded", 100).await;
    let median = |latencies: &[Duration]| latencies[latencies.len() / 2];
    println!(
        "SCIM create alone: median {:?}, max {:?}; beside 2,000 idle connections and a slowloris: median {:?}, max {:?}",
        median(&alone),
        alone.last().unwrap(),
        median(&crowded),
        crowded.last().unwrap()
    );
    assert!(
        *crowded.last().unwrap() < Duration::from_secs(2),
        "every request answered without waiting for a timeout"
    );

    let mut slowloris = trickler.await.unwrap();
    assert!(
        closed_within(&mut slowloris, Duration::from_secs(5)).await,
        "the slowloris connection is closed"
    );
    assert!(
        trickled_at.elapsed() < Duration::from_secs(15),
        "closed by the head timeout, not by the trickle running out"
    );
    for stream in idle.iter_mut().step_by(97) {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "idle connections are closed after the idle timeout"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_trickles_past_its_deadline_is_refused_and_changes_nothing() {
    let server = TestServer::start_limited(short_limits()).await;
    let client = server.client("acme");
    client.get("/Users").await.expect(200);
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    let secret = client_secret(&server);
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/scim+json\r\nContent-Length: 200\r\n\r\n{{\"userName\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)).await);
    assert!(server.events("acme").await.is_empty(), "nothing was written");
    server.stop().await;
}

/// The secret of a new SCIM token of `acme`.
fn client_secret(server: &TestServer) -> String {
    server
        .tokens
        .create(
            &idpsync::storage::TenantId::new("acme").unwrap(),
            "raw",
            idpsync::tokens::TokenKind::Scim,
        )
        .unwrap()
        .1
}

#[tokio::test]
async fn at_the_connection_cap_newcomers_wait_for_a_connection_to_close() {
    let server = TestServer::start_limited(HttpLimits {
        connections_max: 8,
        idle_timeout: Duration::from_millis(500),
        ..short_limits()
    })
    .await;
    let client = server.client("acme");
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(address(&server)).await.unwrap());
    }
    // Served once the idle ones are closed.
    let started = Instant::now();
    client.get("/Users").await.expect(200);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_token_with_as_many_requests_as_it_may_waits_then_gets_429_and_others_go_on() {
    let limits = HttpLimits {
        per_token_concurrency: 2,
        per_token_queue_wait: Duration::from_millis(200),
        ..HttpLimits::default()
    };
    let service = Service::start_limited(limits).await;
    service.scim("acme").get("/Users").await.expect(200);
    let busy = service.admin_token("acme");
    let url = format!("{}/api/v1/tenants/acme/changes", service.origin);
    let first = SseClient::connect(&url, &busy, None).await;
    let second = SseClient::connect(&url, &busy, None).await;
    let busy_api = common::Client::new(&format!("{}/api/v1/tenants/acme", service.origin), Some(busy.clone()));
    let refused = busy_api.get("/users").await.expect(429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.body["error"]["code"], "too_many_requests");
    service.api("acme").get("/users").await.expect(200);
    drop(first);
    // The stream's permit goes with its connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if busy_api.get("/users").await.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the permit came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(second);

    // SCIM: two requests whose bodies never come hold the token's permits.
    let scim_secret = service
        .tokens
        .create(
            &idpsync::storage::TenantId::new("acme").unwrap(),
            "scim",
            idpsync::tokens::TokenKind::Scim,
        )
        .unwrap()
        .1;
    let host = service.origin.trim_start_matches("http://").to_owned();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        let head = format!(
            "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {scim_secret}\r\nContent-Length: 100\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let scim = common::Client::new(&format!("{}/scim/v2", service.origin), Some(scim_secret));
    let refused = scim.get("/Users").await.expect(429);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.body["status"], "429");
    assert_eq!(
        refused.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    service.scim("acme").get("/Users").await.expect(200);
    drop(stalled);
    service.stop().await;
}
