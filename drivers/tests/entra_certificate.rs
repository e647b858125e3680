//! Issue 17: Entra ID with certificate credentials. The fake's token endpoint checks each client
//! assertion as the Microsoft identity platform does (signed by the registered certificate's
//! key and naming it by `x5t#S256`, for this endpoint, by the client for itself, valid now);
//! the key and the certificate are read from files, as an operator gives them.

mod support;

use std::path::Path;
use std::sync::Arc;

use idpsync_drivers::cursor_store::CursorStore;
use idpsync_drivers::fake::credentials::{CERTIFICATE, CLIENT_ID, OTHER_CERTIFICATE, OTHER_PRIVATE_KEY, PRIVATE_KEY};
use idpsync_drivers::fake::{Directory, FakeIdp, FakeMember, Recorded, Vendor};
use idpsync_drivers::sync::{Mode, Resync, SyncError, SyncResult, sync_once};
use idpsync_drivers::{Driver, IntegrationConfig};
use idpsync_engine::ids::IntegrationName;
use idpsync_engine::{Engine, Tenant};
use support::{fast_retries, open_tenant};

/// The SHA-256 thumbprint of `CERTIFICATE`, base64url, as openssl computes it
/// (`openssl x509 -outform der | openssl dgst -sha256 -binary | basenc --base64url`).
const THUMBPRINT: &str = "gNB2sKvLFOXR36E7jYtD7HRcNx94echqAhYp9UyAndc";

/// Three users, all in `vpn`.
fn directory() -> Directory {
    let mut directory = Directory::default();
    directory.put_group("g-vpn", "vpn");
    for n in 1..=3 {
        let id = format!("u{n}");
        directory.put_user(&id, &format!("user{n}@example.com"), true);
        directory.join("g-vpn", FakeMember::User(id));
    }
    directory
}

/// An Entra fake, a tenant, and a directory for the PEM files and the cursors.
struct Setup {
    fake: FakeIdp,
    engine: Engine,
    tenant: Arc<Tenant>,
    cursors: CursorStore,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let fake = FakeIdp::start(Vendor::Entra, directory(), false).await;
        let (engine, tenant) = open_tenant().await;
        let dir = tempfile::tempdir().unwrap();
        Setup {
            fake,
            engine,
            tenant,
            cursors: CursorStore::new(dir.path()),
            dir,
        }
    }

    /// `pem` written to the file `name`, as the `file:` reference a setting takes.
    fn file(&self, name: &str, pem: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        reference(&path)
    }

    /// The configuration of an integration `it` with these `private_key` and `certificate`.
    fn config(&self, private_key: &str, certificate: &str) -> IntegrationConfig {
        let toml = format!(
            "name = \"it\"\nrequest_timeout = \"1s\"\nabsent_listings = 1\n{}",
            self.fake.entra_certificate_toml(private_key, certificate)
        );
        IntegrationConfig::from_toml(&toml).unwrap()
    }

    /// The driver of the key and certificate given as PEM, each in a file of its own.
    fn driver(&self, private_key: &str, certificate: &str) -> Driver {
        let config = self.config(&self.file("key.pem", private_key), &self.file("cert.pem", certificate));
        Driver::new(config, fast_retries()).unwrap()
    }

    async fn sync(&self, driver: &Driver) -> Result<SyncResult, SyncError> {
        sync_once(driver, &self.tenant, &self.cursors, Mode::Apply, Resync::Full)
            .await
            .map(|outcome| outcome.result)
    }

    fn active_users(&self) -> usize {
        let state = self.tenant.state();
        let name = IntegrationName::new("it").unwrap();
        (1..=4)
            .filter_map(|n| state.owned_user(&name, &format!("u{n}")))
            .filter(|id| state.user(*id).unwrap().active)
            .count()
    }
}

fn reference(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// The token requests among `recorded`, as their forms.
fn token_forms(recorded: &[Recorded]) -> Vec<serde_json::Value> {
    recorded
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .map(|r| r.body.clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_syncs_with_a_certificate_and_a_fresh_assertion_for_each_token() {
    let setup = Setup::new().await;
    let driver = setup.driver(PRIVATE_KEY, CERTIFICATE);
    assert_eq!(setup.sync(&driver).await.unwrap(), SyncResult::Applied);
    assert_eq!(setup.active_users(), 3);

    // The tokens are revoked: the next run asks for one again, with a new assertion.
    setup.fake.revoke_tokens();
    assert_eq!(setup.sync(&driver).await.unwrap(), SyncResult::Applied);
    let forms = token_forms(&setup.fake.take_recorded());
    assert_eq!(forms.len(), 2, "{forms:?}");
    let mut ids = Vec::new();
    for form in &forms {
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_id"], CLIENT_ID);
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert!(form.get("client_secret").is_none(), "{form}");
        assert_eq!(form["scope"], format!("{}/.default", setup.fake.origin()));
        let assertion = form["client_assertion"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(assertion).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.x5t_s256.as_deref(), Some(THUMBPRINT));
        let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion).unwrap();
        assert_eq!(claims["iss"], CLIENT_ID);
        assert_eq!(claims["sub"], CLIENT_ID);
        assert_eq!(
            claims["aud"],
            format!("{}/contoso/oauth2/v2.0/token", setup.fake.origin())
        );
        let (nbf, exp) = (claims["nbf"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
        assert!(exp > nbf && exp - nbf <= 600, "a short-lived assertion: {claims}");
        ids.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1], "each token request has its own assertion");
    // The driver's Debug print names the certificate, never the key.
    let printed = format!("{driver:?}");
    assert!(
        printed.contains(THUMBPRINT) && !printed.contains("PRIVATE KEY"),
        "{printed}"
    );

    // One PEM holding the key and the certificate does as well as two.
    let both = setup.file("both.pem", &format!("{PRIVATE_KEY}\n{CERTIFICATE}"));
    let config = setup.config(&both, &both);
    let one_file = Driver::new(config, fast_retries()).unwrap();
    setup.fake.revoke_tokens();
    assert_eq!(setup.sync(&one_file).await.unwrap(), SyncResult::Applied);
    setup.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_the_app_does_not_have_is_refused_and_deactivates_no_one() {
    let setup = Setup::new().await;
    let driver = setup.driver(PRIVATE_KEY, CERTIFICATE);
    assert_eq!(setup.sync(&driver).await.unwrap(), SyncResult::Applied);
    let head = setup.tenant.state().seq();
    // A joiner waits for the next run that gets a token; the others must stay as they are.
    setup.fake.edit(|d| {
        d.put_user("u4", "user4@example.com", true);
        d.join("g-vpn", FakeMember::User("u4".to_owned()));
    });

    // Another key with its own certificate: a pair, but not the app's.
    let stranger = setup.driver(OTHER_PRIVATE_KEY, OTHER_CERTIFICATE);
    let error = setup.sync(&stranger).await.unwrap_err();
    assert!(matches!(error, SyncError::Driver(_)), "{error}");
    assert!(error.to_string().contains("AADSTS700027"), "{error}");
    assert_eq!(setup.tenant.state().seq(), head, "nothing written");
    assert_eq!(setup.active_users(), 3);

    // The app's certificate rolled over in the portal, and the service still has the old one.
    setup.fake.register_certificate(OTHER_CERTIFICATE);
    setup.fake.revoke_tokens();
    let error = setup.sync(&driver).await.unwrap_err();
    assert!(error.to_string().contains("AADSTS700027"), "{error}");
    assert_eq!(setup.tenant.state().seq(), head, "nothing written");
    assert_eq!(setup.active_users(), 3);

    // Given the new key, the run goes on and applies what changed.
    assert_eq!(setup.sync(&stranger).await.unwrap(), SyncResult::Applied);
    assert_eq!(setup.active_users(), 4);
    setup.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_that_cannot_work_fails_the_driver_at_start_naming_its_setting() {
    let setup = Setup::new().await;
    let build_error = |private_key: &str, certificate: &str| {
        Driver::new(setup.config(private_key, certificate), fast_retries())
            .unwrap_err()
            .to_string()
    };
    let key = setup.file("key.pem", PRIVATE_KEY);
    let other_certificate = setup.file("other-cert.pem", OTHER_CERTIFICATE);
    let certificate_only = setup.file("cert.pem", CERTIFICATE);
    let missing = reference(&setup.dir.path().join("absent.pem"));
    let cases = [
        (
            build_error(&key, &other_certificate),
            "integration `it`: key `private_key`: the private key is not the certificate's (`certificate`)".to_owned(),
        ),
        (
            build_error(&certificate_only, &certificate_only),
            "integration `it`: key `private_key`: holds a certificate but no private key".to_owned(),
        ),
        (
            build_error(&missing, &certificate_only),
            format!(
                "integration `it`: key `private_key`: cannot read {}",
                missing.trim_start_matches("file:")
            ),
        ),
        (
            build_error(&key, &missing),
            format!(
                "integration `it`: key `certificate`: cannot read {}",
                missing.trim_start_matches("file:")
            ),
        ),
    ];
    for (error, expected) in cases {
        assert!(error.starts_with(&expected), "{error:?} should start with {expected:?}");
        assert!(!error.contains('\n'), "one line: {error:?}");
    }
    setup.engine.shutdown().await;
}
