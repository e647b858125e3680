//! The admin console without a browser: sign-in, the session cookie and its end on revocation
//! and sign-out, the CSRF and origin rules on every form, the security headers, and a held
//! sync previewed and confirmed through the console's forms.

mod console_harness;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use console_harness::{Console, TENANT, csrf_of};
use idpsync::storage::TenantId;
use idpsync::tokens::TokenKind;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::redirect::Policy;

/// A browser-like client of the console: no redirects followed, the session cookie kept by
/// hand, `Origin` sent on posts.
struct Browser {
    origin: String,
    http: reqwest::Client,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|value| value.to_str().ok())
    }
}

impl Browser {
    fn new(console: &Console) -> Browser {
        Browser {
            origin: console.origin.clone(),
            http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
            cookie: None,
        }
    }

    async fn answer(&mut self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|value| value.to_str().ok()) {
            let pair = set.split(';').next().unwrap();
            self.cookie = pair
                .split_once('=')
                .filter(|(_, value)| !value.is_empty())
                .map(|_| pair.to_owned());
        }
        Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let mut request = self.http.get(format!("{}{path}", self.origin));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        self.answer(response).await
    }

    /// Posts `form` with `origin` as its `Origin` header (none when `None`).
    async fn post_from(&mut self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Page {
        let mut request = self.http.post(format!("{}{path}", self.origin)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", HeaderValue::from_str(origin).unwrap());
        }
        let response = request.send().await.unwrap();
        self.answer(response).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = self.origin.clone();
        self.post_from(path, form, Some(&origin)).await
    }

    async fn sign_in(&mut self, token: &str) -> Page {
        self.post("/admin/sign-in", &[("token", token)]).await
    }
}

fn tenant_tokens(console: &Console) -> usize {
    console
        .tokens
        .list()
        .unwrap()
        .iter()
        .filter(|token| token.tenant.as_str() == TENANT)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_sets_a_strict_http_only_cookie_and_pages_carry_the_security_headers() {
    let console = Console::start().await;
    let mut browser = Browser::new(&console);
    assert_eq!(browser.get("/admin/tenant").await.location(), Some("/admin/sign-in"));
    assert_eq!(browser.get("/admin").await.location(), Some("/admin/sign-in"));
    assert_eq!(browser.get("/admin/").await.location(), Some("/admin/sign-in"));
    let refused = browser.sign_in("idps_not-a-token").await;
    assert_eq!(refused.status, 401);
    assert!(browser.cookie.is_none());
    let scim = console
        .tokens
        .create(&TenantId::new(TENANT).unwrap(), "scim", TokenKind::Scim)
        .unwrap()
        .1;
    assert_eq!(
        browser.sign_in(&scim).await.status,
        401,
        "a SCIM token opens no console"
    );

    let signed_in = browser.sign_in(&console.admin_token()).await;
    assert_eq!(signed_in.status, 303);
    assert_eq!(signed_in.location(), Some("/admin/tenant"));
    let cookie = signed_in.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/admin"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");

    let page = browser.get("/admin/tenant").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Tenant acme"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers["x-frame-options"], "DENY");
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["referrer-policy"], "same-origin");
    for path in ["/admin/integrations", "/admin/audit", "/admin/log"] {
        assert_eq!(browser.get(path).await.status, 200, "{path}");
    }
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secure_cookie_when_the_request_came_over_https() {
    let console = Console::start().await;
    let response = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/admin/sign-in", console.origin))
        .header("origin", &console.origin)
        .header("x-forwarded-proto", "https")
        .form(&[("token", console.admin_token())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(response.headers()["set-cookie"].to_str().unwrap().ends_with("; Secure"));
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_without_the_csrf_token_or_from_another_origin_is_refused_and_changes_nothing() {
    let console = Console::start().await;
    let mut browser = Browser::new(&console);
    browser.sign_in(&console.admin_token()).await;
    let page = browser.get("/admin/tenant").await;
    let csrf = csrf_of(&page.body);
    let before = tenant_tokens(&console);

    let missing = browser.post("/admin/tokens", &[("name", "ci"), ("kind", "scim")]).await;
    assert_eq!(missing.status, 403);
    let wrong = browser
        .post(
            "/admin/tokens",
            &[("csrf", "0".repeat(64).as_str()), ("name", "ci"), ("kind", "scim")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let elsewhere = browser
        .post_from(
            "/admin/tokens",
            &[("csrf", csrf.as_str()), ("name", "ci"), ("kind", "scim")],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(elsewhere.status, 403);
    let no_origin = browser
        .post_from(
            "/admin/tokens",
            &[("csrf", csrf.as_str()), ("name", "ci"), ("kind", "scim")],
            None,
        )
        .await;
    assert_eq!(no_origin.status, 403);
    assert_eq!(tenant_tokens(&console), before, "a refused form creates nothing");

    console.hold_a_sync().await;
    let refused = browser.post("/admin/integrations/okta/held/reject", &[]).await;
    assert_eq!(refused.status, 403);
    assert_eq!(console.tenant.held().len(), 1, "a refused form rejects nothing");
    let rejected = browser
        .post("/admin/integrations/okta/held/reject", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(rejected.location(), Some("/admin/integrations?done=rejected"));
    assert!(console.tenant.held().is_empty(), "the form with its token rejects it");
    assert_eq!(
        console.owned_users(),
        console_harness::PEOPLE,
        "and applies nothing of it"
    );

    let created = browser
        .post(
            "/admin/tokens",
            &[("csrf", csrf.as_str()), ("name", "ci"), ("kind", "scim")],
        )
        .await;
    assert_eq!(created.status, 200);
    assert!(created.body.contains("idps_"), "the secret is shown once");
    assert_eq!(tenant_tokens(&console), before + 1);
    let again = browser.get("/admin/tenant").await;
    assert!(!again.body.contains("idps_"), "and never again");
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_the_token_or_signing_out_sends_the_cookie_back_to_sign_in() {
    let console = Console::start().await;
    let (own, secret) = console
        .tokens
        .create(&TenantId::new(TENANT).unwrap(), "revoked-soon", TokenKind::Admin)
        .unwrap();
    let mut browser = Browser::new(&console);
    browser.sign_in(&secret).await;
    assert_eq!(browser.get("/admin/tenant").await.status, 200);
    let cookie = browser.cookie.clone();
    console.tokens.revoke(&own.id.to_string()).unwrap();
    let after = browser.get("/admin/tenant").await;
    assert_eq!(after.status, 303);
    assert_eq!(after.location(), Some("/admin/sign-in"));
    browser.cookie = cookie;
    assert_eq!(
        browser.get("/admin/tenant").await.location(),
        Some("/admin/sign-in"),
        "the session ended with the token"
    );

    let mut browser = Browser::new(&console);
    browser.sign_in(&console.admin_token()).await;
    let cookie = browser.cookie.clone();
    let csrf = csrf_of(&browser.get("/admin/tenant").await.body);
    let out = browser.post("/admin/sign-out", &[("csrf", csrf.as_str())]).await;
    assert_eq!(out.location(), Some("/admin/sign-in"));
    browser.cookie = cookie;
    assert_eq!(browser.get("/admin/log").await.location(), Some("/admin/sign-in"));
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_held_sync_shows_who_loses_which_access_and_confirming_it_lands_in_the_log() {
    let console = Console::start().await;
    let mut browser = Browser::new(&console);
    browser.sign_in(&console.admin_token()).await;
    console.hold_a_sync().await;
    let run = console.tenant.held().values().next().unwrap().snapshot.run;

    let list = browser.get("/admin/integrations").await;
    assert!(list.body.contains("/admin/integrations/okta/held"), "{}", list.body);
    let held = browser.get("/admin/integrations/okta/held").await;
    assert_eq!(held.status, 200);
    for n in 2..console_harness::PEOPLE {
        assert!(
            held.body.contains(&format!("person{n}@example.com")),
            "person{n} is listed"
        );
    }
    assert!(
        !held.body.contains("person0@example.com"),
        "who keeps access is not listed"
    );
    assert_eq!(held.body.matches("class=\"access-lost\"").count(), 8, "one route each");
    assert!(held.body.contains("route/r-vpn"));
    assert!(held.body.contains(&run.to_string()));

    let csrf = csrf_of(&held.body);
    let confirmed = browser
        .post(
            "/admin/integrations/okta/held/confirm",
            &[("csrf", csrf.as_str()), ("run", run.to_string().as_str())],
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert!(console.tenant.held().is_empty());
    assert_eq!(
        console.removed_by(run).await,
        8,
        "the confirmed run's removals are in the log"
    );
    let again = browser
        .post(
            "/admin/integrations/okta/held/confirm",
            &[("csrf", csrf.as_str()), ("run", run.to_string().as_str())],
        )
        .await;
    assert_eq!(again.status, 404);
    console.stop().await;
}

/// Where this test binary's trail of actions is written: a buffer, as JSON lines.
fn trail() -> Arc<Mutex<Vec<u8>>> {
    static TRAIL: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(TRAIL.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
                "{}=info",
                idpsync::actions::TARGET
            )))
            .with_writer(move || Capture(Arc::clone(&writer)))
            .init();
        buffer
    }))
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The actions of the trail by `token`, in order, as (action, subject, door, token name).
fn actions_by(trail: &Mutex<Vec<u8>>, token: &str) -> Vec<(String, String, String, String)> {
    let text = String::from_utf8(trail.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["fields"].clone())
        .filter(|fields| fields["token"] == token)
        .map(|fields| {
            let text = |key: &str| fields[key].as_str().unwrap().to_owned();
            (text("action"), text("subject"), text("door"), text("token_name"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn holds_confirmed_or_rejected_and_syncs_started_in_the_console_name_its_token() {
    let trail = trail();
    let console = Console::start().await;
    let (token, secret) = console
        .tokens
        .create(&TenantId::new(TENANT).unwrap(), "night-shift", TokenKind::Admin)
        .unwrap();
    let mut browser = Browser::new(&console);
    browser.sign_in(&secret).await;
    console.hold_a_sync().await;
    let held = browser.get("/admin/integrations/okta/held").await;
    let csrf = csrf_of(&held.body);
    let rejected = browser
        .post("/admin/integrations/okta/held/reject", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(rejected.status, 303);
    assert!(console.tenant.held().is_empty());
    let started = browser
        .post("/admin/integrations/okta/sync", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(started.status, 303);
    console
        .eventually("the sync held again", || !console.tenant.held().is_empty())
        .await;
    let run = console.tenant.held().values().next().unwrap().snapshot.run;
    let confirmed = browser
        .post(
            "/admin/integrations/okta/held/confirm",
            &[("csrf", csrf.as_str()), ("run", run.to_string().as_str())],
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);

    let line = |action: &str| {
        (
            action.to_owned(),
            "okta".to_owned(),
            "console".to_owned(),
            "night-shift".to_owned(),
        )
    };
    assert_eq!(
        actions_by(&trail, &token.id.to_string()),
        [line("hold.reject"), line("sync.start"), line("hold.confirm")]
    );
    let all = String::from_utf8(trail.lock().unwrap().clone()).unwrap();
    assert!(!all.contains(&secret), "the secret is never in the trail");
    console.stop().await;
}
