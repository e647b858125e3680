//! Credentials: static headers (Okta `SSWS`, JumpCloud `x-api-key` and `x-org-id`, authentik
//! and Zitadel bearer tokens) and OAuth2 access tokens (client credentials, with a secret or a
//! signed JWT — a private key's, or an Entra certificate's; JWT-bearer grants), cached and
//! refreshed before they expire. Expiry comes from the token response's `expires_in`, never
//! from reading the token, and is bounded: a lifetime the IdP overstates cannot keep a token
//! past a day, nor overflow the clock.
//!
//! Credentials never show in a `Debug` print: their header values are marked sensitive (the
//! `http` crate then prints `Sensitive`), secrets are [`Secret`]s, and the token cache shows
//! when its token is refreshed, not the token.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde::Serialize;

use crate::error::DriverError;
use crate::http::{Body, Budget, Http, Request, excerpt};
use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// How an integration proves who it is.
#[derive(Debug)]
pub(crate) enum Auth {
    /// Headers sent as they are.
    Static(Vec<(HeaderName, HeaderValue)>),
    /// An OAuth2 access token, sent as `Authorization: Bearer`.
    OAuth(Box<TokenSource>),
}

/// Where a token comes from, and the one it has now.
pub(crate) struct TokenSource {
    token_url: Url,
    grant: Grant,
    cached: tokio::sync::Mutex<Option<CachedToken>>,
}

/// A token and when to fetch the next; its header value is sensitive, so `Debug` hides it.
#[derive(Clone, Debug)]
struct CachedToken {
    header: HeaderValue,
    refresh_at: Instant,
}

/// The token source as far as it can be shown: the endpoint, the grant, and whether a token is
/// cached (and until when), never the token.
impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("TokenSource");
        debug
            .field("token_url", &self.token_url.as_str())
            .field("grant", &self.grant);
        match self.cached.try_lock() {
            Ok(cached) => debug.field("cached", &*cached),
            // A refresh is under way.
            Err(_) => debug.field("cached", &"refreshing"),
        };
        debug.finish()
    }
}

/// A token request's form fields and optional `Authorization` header.
type TokenForm = (Vec<(&'static str, String)>, Option<HeaderValue>);

/// The token request's grant.
#[derive(Debug)]
pub(crate) enum Grant {
    /// `client_credentials` with `client_id`/`client_secret` in the form, plus extra fields
    /// (`scope`, `audience`).
    ClientSecretPost {
        client_id: String,
        client_secret: Secret,
        extra: Vec<(&'static str, String)>,
    },
    /// `client_credentials` with HTTP Basic client authentication.
    ClientSecretBasic {
        client_id: String,
        client_secret: Secret,
        scope: String,
    },
    /// `client_credentials` with `private_key_jwt` client authentication (Okta). A token
    /// endpoint that answers `invalid_scope` is asked again without `optional_scope`, if it is
    /// one of `scope`: the service app was not granted it, and what needs it goes without.
    PrivateKeyJwt {
        client_id: String,
        signer: Signer,
        scope: String,
        optional_scope: Option<&'static str>,
    },
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer` with a signed assertion (Google service
    /// accounts acting for an admin, Zitadel JWT profile).
    JwtBearer { signer: Signer, claims: AssertionClaims },
    /// `client_credentials` with a certificate's client assertion, as the Microsoft identity
    /// platform takes it: `client_id` in the form as well, and an assertion that says when it
    /// becomes valid (`nbf`), signed by a [`Signer::for_certificate`].
    CertificateAssertion {
        client_id: String,
        signer: Signer,
        scope: String,
    },
}

/// Who an assertion names.
#[derive(Debug)]
pub(crate) struct AssertionClaims {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) audience: String,
    pub(crate) scope: String,
    /// Whether the scope travels in the assertion (Google) or in the form (Zitadel).
    pub(crate) scope_in_assertion: bool,
}

/// A service account's signing key, from its vendor's key file: Google's (`client_email`,
/// `private_key_id`, `private_key`) or Zitadel's (`userId`, `keyId`, `key`).
#[derive(Debug)]
pub(crate) struct ServiceAccountKey {
    /// Who signs: the service account's email or user id.
    pub(crate) issuer: String,
    /// The key's id (JWT `kid`).
    pub(crate) key_id: Option<String>,
    /// The private key, PEM.
    pub(crate) private_key: Secret,
}

/// An RSA private key and the header of the assertions it signs: RS256 with the key's `kid`
/// if it has one, or PS256 naming the certificate the key was registered with.
pub(crate) struct Signer {
    key: EncodingKey,
    header: Header,
}

/// The header only (the key's id, the certificate's thumbprint), never the key.
impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.header.alg)
            .field("key_id", &self.header.kid)
            .field("x5t#S256", &self.header.x5t_s256)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub(crate) fn new(private_key_pem: &Secret, key_id: Option<String>) -> Result<Signer, DriverError> {
        let key = EncodingKey::from_rsa_pem(private_key_pem.expose().as_bytes())
            .map_err(|error| DriverError::Credentials(format!("the private key is not an RSA PEM key: {error}")))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = key_id;
        Ok(Signer { key, header })
    }

    pub(crate) fn from_service_account(key: &ServiceAccountKey) -> Result<Signer, DriverError> {
        Signer::new(&key.private_key, key.key_id.clone())
    }

    /// The signer of a key registered with a certificate (checked to be the key's by the
    /// caller): PS256, with the certificate's SHA-256 thumbprint as `x5t#S256`, which is what
    /// the Microsoft identity platform documents for new apps.
    pub(crate) fn for_certificate(key: EncodingKey, thumbprint: String) -> Signer {
        let mut header = Header::new(Algorithm::PS256);
        header.x5t_s256 = Some(thumbprint);
        Signer { key, header }
    }

    fn sign(&self, claims: &impl Serialize) -> Result<String, DriverError> {
        jsonwebtoken::encode(&self.header, claims, &self.key)
            .map_err(|error| DriverError::Credentials(format!("cannot sign an assertion: {error}")))
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    jti: String,
}

/// Whether a client assertion says when it becomes valid: the Microsoft identity platform
/// asks for `nbf`, Okta's documentation does not name it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientAssertion {
    WithNotBefore,
    WithoutNotBefore,
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ASSERTION_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Assertions live this long; the vendors accept at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);
/// A token response without `expires_in` is taken for a token of this lifetime.
const TOKEN_LIFETIME_DEFAULT: Duration = Duration::from_secs(300);
/// The longest a token is used, whatever `expires_in` says: the vendors issue tokens of an
/// hour or a day, and a larger number is a broken server's.
const TOKEN_LIFETIME_MAX: Duration = Duration::from_secs(24 * 3600);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Auth {
    /// A bearer token sent as it is.
    pub(crate) fn bearer(token: &Secret) -> Result<Auth, DriverError> {
        Ok(Auth::Static(vec![(
            AUTHORIZATION,
            header_value(&format!("Bearer {}", token.expose()))?,
        )]))
    }

    /// The headers for the next request, fetching a token if the cached one is near expiry.
    pub(crate) async fn headers(
        &self,
        http: &Http,
        budget: &Budget,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, DriverError> {
        match self {
            Auth::Static(headers) => Ok(headers.clone()),
            Auth::OAuth(source) => Ok(vec![(AUTHORIZATION, source.header(http, budget).await?)]),
        }
    }

    /// Forgets a token the IdP refused, so that the next request fetches a new one. Returns
    /// whether there was anything to forget.
    pub(crate) fn invalidate(&self) -> bool {
        match self {
            Auth::Static(_) => false,
            Auth::OAuth(source) => match source.cached.try_lock() {
                Ok(mut cached) => cached.take().is_some(),
                // Someone is refreshing it right now: that is as good as forgetting it.
                Err(_) => true,
            },
        }
    }
}

/// A credential as a header value, marked sensitive: its `Debug` shows `Sensitive`, and HTTP/2
/// never indexes it.
pub(crate) fn header_value(text: &str) -> Result<HeaderValue, DriverError> {
    let mut value = HeaderValue::from_str(text)
        .map_err(|_| DriverError::Credentials("a credential contains characters a header cannot carry".to_owned()))?;
    value.set_sensitive(true);
    Ok(value)
}

impl TokenSource {
    /// An OAuth2 token source, as the [`Auth`] that sends its tokens.
    pub(crate) fn auth(token_url: Url, grant: Grant) -> Auth {
        Auth::OAuth(Box::new(TokenSource {
            token_url,
            grant,
            cached: tokio::sync::Mutex::new(None),
        }))
    }

    async fn header(&self, http: &Http, budget: &Budget) -> Result<HeaderValue, DriverError> {
        let mut cached = self.cached.lock().await;
        if let Some(token) = cached.as_ref().filter(|token| Instant::now() < token.refresh_at) {
            return Ok(token.header.clone());
        }
        let fresh = self.fetch(http, budget).await?;
        let header = fresh.header.clone();
        *cached = Some(fresh);
        Ok(header)
    }

    /// The token request's form, and its `Authorization` header where the client
    /// authenticates with HTTP Basic.
    fn form(&self, without_optional: bool) -> Result<TokenForm, DriverError> {
        let now = unix_now();
        let exp = now + ASSERTION_LIFETIME.as_secs();
        Ok(match &self.grant {
            Grant::ClientSecretPost {
                client_id,
                client_secret,
                extra,
            } => {
                let mut form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.expose().to_owned()),
                ];
                form.extend(extra.iter().cloned());
                (form, None)
            }
            Grant::ClientSecretBasic {
                client_id,
                client_secret,
                scope,
            } => {
                let basic = STANDARD.encode(format!("{client_id}:{}", client_secret.expose()));
                (
                    vec![
                        ("grant_type", "client_credentials".to_owned()),
                        ("scope", scope.clone()),
                    ],
                    Some(header_value(&format!("Basic {basic}"))?),
                )
            }
            Grant::PrivateKeyJwt {
                client_id,
                signer,
                scope,
                optional_scope,
            } => {
                let scope = match optional_scope.filter(|_| without_optional) {
                    Some(optional) => without_scope(scope, optional),
                    None => scope.clone(),
                };
                let assertion = self.client_assertion(client_id, signer, ClientAssertion::WithoutNotBefore)?;
                (
                    vec![
                        ("grant_type", "client_credentials".to_owned()),
                        ("scope", scope),
                        ("client_assertion_type", CLIENT_ASSERTION_JWT.to_owned()),
                        ("client_assertion", assertion),
                    ],
                    None,
                )
            }
            Grant::CertificateAssertion {
                client_id,
                signer,
                scope,
            } => {
                let assertion = self.client_assertion(client_id, signer, ClientAssertion::WithNotBefore)?;
                (
                    vec![
                        ("grant_type", "client_credentials".to_owned()),
                        ("client_id", client_id.clone()),
                        ("scope", scope.clone()),
                        ("client_assertion_type", CLIENT_ASSERTION_JWT.to_owned()),
                        ("client_assertion", assertion),
                    ],
                    None,
                )
            }
            Grant::JwtBearer { signer, claims } => {
                let assertion = signer.sign(&Claims {
                    iss: &claims.issuer,
                    sub: &claims.subject,
                    aud: &claims.audience,
                    iat: now,
                    nbf: None,
                    exp,
                    scope: claims.scope_in_assertion.then_some(claims.scope.as_str()),
                    jti: uuid::Uuid::now_v7().to_string(),
                })?;
                let mut form = vec![("grant_type", JWT_BEARER.to_owned()), ("assertion", assertion)];
                if !claims.scope_in_assertion {
                    form.push(("scope", claims.scope.clone()));
                }
                (form, None)
            }
        })
    }

    /// A client assertion (RFC 7523 §2.2): the client names itself as issuer and subject, for
    /// this token endpoint, for [`ASSERTION_LIFETIME`]; a fresh one for each token request.
    fn client_assertion(&self, client_id: &str, signer: &Signer, form: ClientAssertion) -> Result<String, DriverError> {
        let now = unix_now();
        signer.sign(&Claims {
            iss: client_id,
            sub: client_id,
            aud: self.token_url.as_str(),
            iat: now,
            nbf: (form == ClientAssertion::WithNotBefore).then_some(now),
            exp: now + ASSERTION_LIFETIME.as_secs(),
            scope: None,
            jti: uuid::Uuid::now_v7().to_string(),
        })
    }

    /// Asks for a token with every scope; a refused optional scope (see
    /// [`Grant::PrivateKeyJwt`]) is left out of a second request, with a warning. Each token
    /// fetched asks again for the whole set, so a scope granted later is used once the token
    /// is renewed (within the hour).
    async fn fetch(&self, http: &Http, budget: &Budget) -> Result<CachedToken, DriverError> {
        match self.fetch_with(http, budget, false).await {
            Err(DriverError::Token { url, message }) if message.contains("invalid_scope") => {
                match self.optional_scope() {
                    Some(optional) => {
                        tracing::warn!(token_url = %url, scope = optional, %message, "the token endpoint refused a scope the service app was not granted; asking without it");
                        self.fetch_with(http, budget, true).await
                    }
                    None => Err(DriverError::Token { url, message }),
                }
            }
            other => other,
        }
    }

    /// The scope that may be left out, if the grant asks for one.
    fn optional_scope(&self) -> Option<&'static str> {
        match &self.grant {
            Grant::PrivateKeyJwt {
                scope, optional_scope, ..
            } => optional_scope.filter(|optional| scope.split_whitespace().any(|asked| asked == *optional)),
            _ => None,
        }
    }

    async fn fetch_with(
        &self,
        http: &Http,
        budget: &Budget,
        without_optional: bool,
    ) -> Result<CachedToken, DriverError> {
        let (form, authorization) = self.form(without_optional)?;
        let mut request = Request::post(self.token_url.clone(), Body::Form(form));
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let url = self.token_url.to_string();
        let started = Instant::now();
        let token_error = |message: String| DriverError::Token {
            url: url.clone(),
            message,
        };
        let response = http.send(request, budget).await.map_err(|error| match error {
            DriverError::Status { message, .. } | DriverError::Unauthorized { message, .. } => token_error(message),
            other => other,
        })?;
        let body: serde_json::Value = response.json()?;
        let access_token = body
            .get("access_token")
            .and_then(|token| token.as_str())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| token_error(format!("no access_token in {}", excerpt(&response.body))))?;
        // Some servers send expires_in as a string; a response without it is treated as a
        // five-minute token, and none is used for more than a day.
        let expires_in = match body.get("expires_in") {
            Some(serde_json::Value::Number(number)) => number.as_u64(),
            Some(serde_json::Value::String(text)) => text.parse().ok(),
            _ => None,
        }
        .map_or(TOKEN_LIFETIME_DEFAULT, Duration::from_secs)
        .min(TOKEN_LIFETIME_MAX);
        // Refresh a fifth of the lifetime early (at most five minutes), so that a request never
        // leaves with a token about to expire.
        let margin = (expires_in / 5).min(Duration::from_secs(300));
        Ok(CachedToken {
            header: header_value(&format!("Bearer {access_token}"))?,
            refresh_at: started + expires_in - margin,
        })
    }
}

/// `scopes` (separated by spaces) without `left_out`.
fn without_scope(scopes: &str, left_out: &str) -> String {
    scopes
        .split_whitespace()
        .filter(|scope| *scope != left_out)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_left_out_of_the_others() {
        assert_eq!(
            without_scope("okta.users.read  okta.logs.read okta.groups.read", "okta.logs.read"),
            "okta.users.read okta.groups.read"
        );
        assert_eq!(without_scope("okta.users.read", "okta.logs.read"), "okta.users.read");
    }
}
