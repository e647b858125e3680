//! The signed assertions a fake token endpoint checks: Google's JWT-bearer grant, and the
//! client assertion of an Entra app registration's certificate, each as its vendor checks it.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::credentials;
use crate::certificate::Certificate;

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
const CLIENT_ASSERTION_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest-lived assertion either vendor takes.
const LIFETIME_MAX: u64 = 3600;

/// A JWT-bearer assertion as Google checks it: signed (RS256) by the test key, for this token
/// endpoint, with an issuer, the subject it acts for, a scope and a lifetime of at most an hour.
pub(super) fn google_assertion_is_valid(assertion: &str, audience: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        scope: String,
        iat: u64,
        exp: u64,
    }
    let Ok(key) = DecodingKey::from_rsa_pem(include_bytes!("test_key.pub.pem")) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    match jsonwebtoken::decode::<Claims>(assertion, &key, &validation) {
        Ok(token) => {
            let claims = token.claims;
            !claims.iss.is_empty()
                && !claims.sub.is_empty()
                && !claims.scope.is_empty()
                && claims.exp > claims.iat
                && claims.exp - claims.iat <= LIFETIME_MAX
                && token.header.kid.as_deref() == Some("k1")
        }
        Err(_) => false,
    }
}

/// Why the Microsoft identity platform refuses a client assertion, in its words (`AADSTS…`),
/// or nothing when it takes it: a JWT (`typ`), PS256 or RS256, naming the registered
/// certificate by its SHA-256 thumbprint (`x5t#S256`) and signed by its key, for this token
/// endpoint (`aud`), issued by the client for itself (`iss` = `sub` = `client_id`), valid now
/// (`nbf`, `exp`) for at most an hour, with an id (`jti`).
pub(super) fn entra_assertion_refusal(
    registered: &Certificate,
    assertion_type: &str,
    assertion: &str,
    client_id: &str,
    audience: &str,
) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        nbf: u64,
        exp: u64,
        jti: String,
    }
    if assertion_type != CLIENT_ASSERTION_JWT {
        return Some(format!("AADSTS50027: invalid client_assertion_type {assertion_type:?}"));
    }
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(header) => header,
        Err(error) => return Some(format!("AADSTS50027: JWT token is invalid or malformed: {error}")),
    };
    if header.typ.as_deref() != Some("JWT") || !matches!(header.alg, Algorithm::PS256 | Algorithm::RS256) {
        return Some(format!("AADSTS50027: unexpected header {header:?}"));
    }
    if header.x5t_s256.as_deref() != Some(registered.thumbprint()) {
        return Some(
            "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application."
                .to_owned(),
        );
    }
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[credentials::CLIENT_ID]);
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    validation.validate_nbf = true;
    let claims = match jsonwebtoken::decode::<Claims>(assertion, registered.public_key(), &validation) {
        Ok(token) => token.claims,
        Err(error) => return Some(format!("AADSTS700027: Client assertion failed validation: {error}")),
    };
    if claims.sub != claims.iss || client_id != claims.iss {
        return Some(
            "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter.".to_owned(),
        );
    }
    if claims.jti.is_empty() || claims.exp.saturating_sub(claims.nbf) > LIFETIME_MAX {
        return Some("AADSTS700024: Client assertion is not within its valid time range.".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{Value, json};

    use super::*;

    const AUDIENCE: &str = "http://127.0.0.1:1/contoso/oauth2/v2.0/token";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    /// An assertion signed by `key`, with the header and claims changed by `change`.
    fn assertion(key: &str, change: impl FnOnce(&mut Header, &mut Value)) -> String {
        let registered = Certificate::from_pem(credentials::CERTIFICATE).unwrap();
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(registered.thumbprint().to_owned());
        let mut claims = json!({
            "iss": credentials::CLIENT_ID, "sub": credentials::CLIENT_ID, "aud": AUDIENCE,
            "iat": now(), "nbf": now(), "exp": now() + 300, "jti": "j1",
        });
        change(&mut header, &mut claims);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap()).unwrap()
    }

    fn refusal(assertion: &str) -> Option<String> {
        let registered = Certificate::from_pem(credentials::CERTIFICATE).unwrap();
        entra_assertion_refusal(
            &registered,
            CLIENT_ASSERTION_JWT,
            assertion,
            credentials::CLIENT_ID,
            AUDIENCE,
        )
    }

    #[test]
    fn an_entra_assertion_is_checked_as_the_identity_platform_does() {
        let key = credentials::PRIVATE_KEY;
        assert_eq!(refusal(&assertion(key, |_, _| {})), None);
        assert_eq!(
            refusal(&assertion(key, |header, _| header.alg = Algorithm::RS256)),
            None,
            "RS256 is still taken"
        );
        let refused: [(&str, String); 8] = [
            (
                "signed by another key",
                assertion(credentials::OTHER_PRIVATE_KEY, |_, _| {}),
            ),
            (
                "another certificate named",
                assertion(key, |header, _| {
                    header.x5t_s256 = Some("LqTdoMGV0ecPEx9btToNziHgGbbX0sPTyKFDs-PAtlI".to_owned())
                }),
            ),
            ("no thumbprint", assertion(key, |header, _| header.x5t_s256 = None)),
            (
                "for another endpoint",
                assertion(key, |_, claims| {
                    claims["aud"] = json!("https://login.microsoftonline.com/x/oauth2/v2.0/token")
                }),
            ),
            (
                "issued by another client",
                assertion(key, |_, claims| claims["iss"] = json!("other-client")),
            ),
            (
                "for another subject",
                assertion(key, |_, claims| claims["sub"] = json!("other-client")),
            ),
            (
                "expired",
                assertion(key, |_, claims| claims["exp"] = json!(now() - 120)),
            ),
            (
                "not yet valid",
                assertion(key, |_, claims| claims["nbf"] = json!(now() + 600)),
            ),
        ];
        for (what, assertion) in refused {
            assert!(refusal(&assertion).is_some(), "{what}: taken");
        }
        let registered = Certificate::from_pem(credentials::CERTIFICATE).unwrap();
        let good = assertion(key, |_, _| {});
        assert!(
            entra_assertion_refusal(&registered, "client_secret", &good, credentials::CLIENT_ID, AUDIENCE).is_some()
        );
        assert!(entra_assertion_refusal(&registered, CLIENT_ASSERTION_JWT, &good, "other-client", AUDIENCE).is_some());
    }
}
