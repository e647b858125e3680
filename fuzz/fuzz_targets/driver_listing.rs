//! Every vendor's listing on arbitrary IdP answers: the bytes become the bodies of the driver's
//! requests, in order (token requests included), and the vendor's decoding, paging and mapping
//! into a listing never panic, never loop, and give a listing of the scope asked for, or an
//! error.
//!
//! Input: the first byte picks the integration (its low bits) and whether the listing is
//! incremental (its high bit); the rest, split at each NUL byte, are the answers.
//!
//! Run: `cargo fuzz run --sanitizer none driver_listing` in `fuzz/` (with RUSTC_BOOTSTRAP=1 on
//! a stable toolchain, as `.ci/fuzz-smoke` does).

#![no_main]

use std::sync::LazyLock;

use idpsync_drivers::internals::list_scripted;
use idpsync_drivers::{Cursor, IntegrationConfig};
use idpsync_engine::reconcile::ListingScope;
use libfuzzer_sys::fuzz_target;

/// A test-only RSA key, for the vendors that sign assertions.
const TEST_KEY: &str = include_str!("../../drivers/src/fake/test_key.pem");

/// One integration of each vendor (two for Zitadel, whose groups come from two APIs), with the
/// vendor's own endpoints: nothing leaves the process, the answers are scripted.
static INTEGRATIONS: LazyLock<Vec<IntegrationConfig>> = LazyLock::new(|| {
    let key_file = serde_json::json!({
        "client_email": "sync@example.iam.gserviceaccount.com", "private_key_id": "k1", "private_key": TEST_KEY
    })
    .to_string();
    let google = format!(
        "provider = \"google\"\nsubject = \"admin@example.com\"\nservice_account_key = {}",
        toml::Value::String(key_file)
    );
    [
        "provider = \"entra\"\ntenant_id = \"contoso\"\nclient_id = \"c\"\nclient_secret = \"s\"",
        "provider = \"okta\"\ndomain = \"acme.okta.com\"\napi_token = \"t\"",
        &google,
        "provider = \"jumpcloud\"\napi_key = \"k\"",
        "provider = \"keycloak\"\nbase_url = \"https://sso.example.com\"\nrealm = \"acme\"\nclient_id = \"c\"\nclient_secret = \"s\"",
        "provider = \"auth0\"\ndomain = \"acme.eu.auth0.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\ngroups = \"both\"",
        "provider = \"authentik\"\nbase_url = \"https://auth.example.com/api/v3\"\napi_token = \"t\"",
        "provider = \"zitadel\"\nbase_url = \"https://z.example.com\"\npat = \"t\"",
        "provider = \"zitadel\"\nbase_url = \"https://z.example.com\"\npat = \"t\"\ngroups = \"groups\"",
    ]
    .iter()
    .map(|keys| IntegrationConfig::from_toml(&format!("name = \"fuzz\"\n{keys}")).expect("a valid integration"))
    .collect()
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime builds")
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let config = INTEGRATIONS[usize::from(selector & 0x7f) % INTEGRATIONS.len()].clone();
    let since = (selector & 0x80 != 0).then(|| match config.provider_name() {
        "entra" => Cursor::GraphDelta {
            users: "https://graph.microsoft.com/v1.0/users/delta()?$deltatoken=u".to_owned(),
            groups: "https://graph.microsoft.com/v1.0/groups/delta()?$deltatoken=g".to_owned(),
        },
        _ => Cursor::Since {
            unix_seconds: 1_700_000_000,
            feed: None,
        },
    });
    // The vendors without deltas list everything whatever the cursor.
    let incremental = since.is_some() && matches!(config.provider_name(), "entra" | "okta" | "auth0" | "authentik");
    let answers: Vec<Vec<u8>> = rest.split(|byte| *byte == 0).map(<[u8]>::to_vec).collect();
    if let Ok(listing) = RUNTIME.block_on(list_scripted(config, answers, since.as_ref())) {
        let expected = if incremental {
            ListingScope::Incremental
        } else {
            ListingScope::Complete
        };
        assert_eq!(listing.scope(), expected);
    }
});
