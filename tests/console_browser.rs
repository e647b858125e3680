//! The admin console in a real headless browser (Debian's chromium through chromedriver):
//! sign in, create a token and see its secret once, make the guard hold a sync with the "Sync
//! now" button, review who loses what, confirm it, and find the confirmation in the log; the
//! audit and the log pages too.
//!
//! Skips (saying why) when chromedriver is not installed, unless `IDPSYNC_REQUIRE_BROWSER` is
//! set, as `.ci/run` does: then a missing browser fails the test. With
//! `IDPSYNC_CONSOLE_SCREENSHOTS=<dir>` it saves a PNG of each page there
//! (`docs/admin-console/` holds the ones the docs show).

mod console_harness;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use console_harness::{Console, PEOPLE};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Where chromedriver and chromium are, unless the environment says otherwise.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// Starts chromedriver on a free port; `None` (the test skips) when it is not installed and
/// the browser is not required.
fn start_driver() -> Option<Driver> {
    let path = program("CHROMEDRIVER", CHROMEDRIVER);
    if !path.exists() {
        assert!(
            std::env::var_os("IDPSYNC_REQUIRE_BROWSER").is_none(),
            "IDPSYNC_REQUIRE_BROWSER is set but {} does not exist",
            path.display()
        );
        eprintln!(
            "skipped: {} not found (apt-get install chromium chromium-driver, or set CHROMEDRIVER)",
            path.display()
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {}: {error}", path.display()));
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// A headless chromium session, retried while chromedriver starts.
async fn open_browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": program("CHROMIUM", CHROMIUM),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => return client,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no browser session from chromedriver: {error}"),
        }
    }
}

/// Saves a screenshot of the whole page as `<dir>/<name>.png` when screenshots are asked for.
async fn screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("IDPSYNC_CONSOLE_SCREENSHOTS") else {
        return;
    };
    // The window as tall as the page, so that the picture holds all of it.
    let height = browser
        .execute("return document.documentElement.scrollHeight", Vec::new())
        .await
        .ok()
        .and_then(|value| value.as_u64())
        .unwrap_or(1000)
        .clamp(600, 3000);
    browser.set_window_size(1280, height as u32 + 120).await.unwrap();
    let png = browser.screenshot().await.unwrap();
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    browser.set_window_size(1280, 1000).await.unwrap();
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css}: {error}"))
        .text()
        .await
        .unwrap()
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css}: {error}"))
        .click()
        .await
        .unwrap();
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_signs_in_creates_a_token_and_confirms_a_held_sync_in_a_browser() {
    let Some(driver) = start_driver() else {
        return;
    };
    let console = Console::start().await;
    let browser = open_browser(&driver).await;
    let base = &console.origin;

    // Sign in.
    browser.goto(&format!("{base}/admin/")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/admin/sign-in"));
    screenshot(&browser, "sign-in").await;
    type_into(&browser, "#token", &console.admin_token()).await;
    click(&browser, "#sign-in").await;
    assert_eq!(text_of(&browser, "#tenant-name").await, "acme");

    // Create a SCIM token: its secret is shown once, and it works.
    type_into(&browser, "#token-name", "entra-prod").await;
    browser
        .find(Locator::Css("#token-kind"))
        .await
        .unwrap()
        .select_by_value("scim")
        .await
        .unwrap();
    click(&browser, "#create").await;
    let secret = text_of(&browser, "#new-secret").await;
    assert!(secret.starts_with("idps_"), "{secret}");
    screenshot(&browser, "tenant-new-token").await;
    let users = reqwest::Client::new()
        .get(format!("{base}/scim/v2/Users"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200, "the new SCIM token opens SCIM");
    browser.goto(&format!("{base}/admin/tenant")).await.unwrap();
    let page = browser.source().await.unwrap();
    assert!(
        page.contains("entra-prod") && !page.contains(&secret),
        "listed, the secret never again"
    );
    screenshot(&browser, "tenant").await;

    // Most people leave the IdP; "Sync now" brings a run the guard holds.
    console.remove_most_people();
    browser.goto(&format!("{base}/admin/integrations")).await.unwrap();
    click(&browser, "button.sync-now").await;
    text_of(&browser, "#notice").await;
    console
        .eventually("the held sync", || !console.tenant.held().is_empty())
        .await;
    let run = console.tenant.held().values().next().unwrap().snapshot.run;
    browser.goto(&format!("{base}/admin/integrations")).await.unwrap();
    screenshot(&browser, "integrations").await;

    // Review: who loses which access.
    click(&browser, "a.held-link").await;
    assert_eq!(text_of(&browser, "#held-run").await, run.to_string());
    let losers = browser.find_all(Locator::Css("tr.loser")).await.unwrap();
    assert_eq!(losers.len(), PEOPLE - 2);
    let first = losers[0].text().await.unwrap();
    assert!(first.contains("route/r-vpn") && first.contains("vpn"), "{first}");
    screenshot(&browser, "held-sync").await;

    // Confirm; the run's removals are in the log.
    click(&browser, "#confirm-button").await;
    assert!(text_of(&browser, "#confirmed").await.contains(&run.to_string()));
    screenshot(&browser, "held-sync-confirmed").await;
    assert!(console.tenant.held().is_empty());
    assert_eq!(
        console.removed_by(run).await,
        PEOPLE - 2,
        "the confirmed run's removals are in the log"
    );

    // A leaver's audit timeline.
    browser.goto(&format!("{base}/admin/audit")).await.unwrap();
    screenshot(&browser, "audit").await;
    type_into(&browser, "#audit-user", "person5@example.com").await;
    click(&browser, "#user-audit button").await;
    // The form's page has an h1 too: wait for the audit's verdict, which only the audit has.
    text_of(&browser, ".verdict").await;
    let audit = text_of(&browser, "h1").await;
    assert!(
        audit.contains("person5@example.com"),
        "{audit}: {}",
        browser.source().await.unwrap()
    );
    screenshot(&browser, "audit-user").await;

    // Log status, verified.
    browser.goto(&format!("{base}/admin/log")).await.unwrap();
    click(&browser, "#verify-button").await;
    assert!(text_of(&browser, "#verified").await.contains("The log verifies"));
    screenshot(&browser, "log").await;

    // Sign out: back to sign-in, and the console is closed.
    click(&browser, "header form button").await;
    browser.goto(&format!("{base}/admin/tenant")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/admin/sign-in"));

    browser.close().await.unwrap();
    console.stop().await;
}
