//! The configuration of one integration (`[[tenant.integration]]` in the TOML file), checked
//! when it is read: unknown keys and missing required keys are errors that name the integration
//! and the key; secrets are resolved (`env:NAME`, `file:PATH`) once, here.

use std::collections::BTreeSet;
use std::time::Duration;

use idpsync_engine::ids::IntegrationName;
use idpsync_engine::reconcile::GroupFilter;
use reqwest::Url;
use serde::Deserialize;

use crate::secret::Secret;

/// One integration: which IdP, how often, with which credentials and filters.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct IntegrationConfig {
    /// Unique within the tenant.
    pub name: IntegrationName,
    /// How often the scheduler runs it.
    pub interval: Duration,
    /// How often a full listing runs, even where the IdP offers deltas (default 24 h).
    pub full_resync: Duration,
    /// The longest one sync may take, retries included (default 30 min).
    pub sync_timeout: Duration,
    /// The longest one HTTP request may take (default 30 s).
    pub request_timeout: Duration,
    /// The API root, as the vendor's OpenAPI `servers` entry has it.
    pub base_url: Url,
    /// Which groups are synced.
    pub groups: GroupFilter,
    /// Only sync users who are members (directly or through nested groups) of a synced group.
    pub only_group_members: bool,
    /// The vendor, with its credentials and options.
    pub provider: ProviderConfig,
}

/// The vendor-specific part of an integration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ProviderConfig {
    /// Microsoft Entra ID through Microsoft Graph.
    Entra {
        /// The OAuth2 token endpoint.
        token_url: Url,
        /// The app registration's client id.
        client_id: String,
        /// Its client secret.
        client_secret: Secret,
        /// The scope asked for (`<graph root>/.default`).
        scope: String,
    },
    /// Okta.
    Okta {
        /// SSWS API token or OAuth 2.0 service app.
        auth: OktaAuth,
    },
    /// Google Workspace (Admin SDK Directory API).
    Google {
        /// The OAuth2 token endpoint.
        token_url: Url,
        /// The service account (`client_email`, `private_key`).
        service_account: ServiceAccountKey,
        /// The admin user the service account acts for (domain-wide delegation).
        subject: String,
        /// `my_customer` or a customer id.
        customer: String,
    },
    /// JumpCloud.
    JumpCloud {
        /// The admin API key.
        api_key: Secret,
        /// For multi-tenant admins: the organization.
        org_id: Option<String>,
    },
    /// Keycloak.
    Keycloak {
        /// The OIDC token endpoint of the realm.
        token_url: Url,
        /// The realm synced.
        realm: String,
        /// A confidential client with a service account.
        client_id: String,
        /// Its secret.
        client_secret: Secret,
    },
    /// Auth0.
    Auth0 {
        /// The tenant's token endpoint.
        token_url: Url,
        /// A machine-to-machine application.
        client_id: String,
        /// Its secret.
        client_secret: Secret,
        /// The Management API audience.
        audience: String,
        /// What becomes groups.
        groups: Auth0Groups,
    },
    /// authentik.
    Authentik {
        /// An API token.
        api_token: Secret,
    },
    /// Zitadel.
    Zitadel {
        /// PAT, client credentials or JWT profile.
        auth: ZitadelAuth,
        /// What becomes groups.
        groups: ZitadelGroups,
    },
}

/// How Okta is authenticated.
#[derive(Clone, Debug)]
pub enum OktaAuth {
    /// `Authorization: SSWS <token>`.
    ApiToken(Secret),
    /// OAuth 2.0 client credentials with `private_key_jwt`.
    PrivateKeyJwt {
        /// The org token endpoint.
        token_url: Url,
        /// The service app's client id.
        client_id: String,
        /// Its private key (PEM).
        private_key: Secret,
        /// The key's `kid`, if registered with one.
        key_id: Option<String>,
        /// Scopes asked for.
        scopes: String,
    },
}

/// How Zitadel is authenticated.
#[derive(Clone, Debug)]
pub enum ZitadelAuth {
    /// A personal access token.
    Pat(Secret),
    /// Client credentials (HTTP Basic).
    ClientSecret {
        /// The token endpoint.
        token_url: Url,
        /// The service user's client id.
        client_id: String,
        /// Its secret.
        client_secret: Secret,
    },
    /// JWT profile: a key file of a service user.
    JwtProfile {
        /// The token endpoint.
        token_url: Url,
        /// The key file.
        key: ServiceAccountKey,
    },
}

/// A service account's signing key: Google's key file (`client_email`, `private_key_id`,
/// `private_key`) or Zitadel's (`userId`, `keyId`, `key`).
#[derive(Clone, Debug)]
pub struct ServiceAccountKey {
    /// Who signs: the service account's email or user id.
    pub issuer: String,
    /// The key's id (JWT `kid`).
    pub key_id: Option<String>,
    /// The private key, PEM.
    pub private_key: Secret,
}

/// What Auth0 objects become groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth0Groups {
    /// Roles.
    Roles,
    /// Organizations.
    Organizations,
    /// Both (ids prefixed `role:` and `org:`).
    Both,
}

/// What Zitadel objects become groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZitadelGroups {
    /// Project-role authorizations: one group per project and role key.
    Authorizations,
    /// Zitadel groups (GroupService; its API lists no members, so they arrive empty).
    Groups,
}

/// Keys every integration may have.
const COMMON_KEYS: [&str; 11] = [
    "name",
    "provider",
    "interval",
    "full_resync",
    "sync_timeout",
    "request_timeout",
    "base_url",
    "token_url",
    "include_groups",
    "exclude_groups",
    "only_group_members",
];

/// The keys of each provider, besides the common ones.
fn provider_keys(provider: &str) -> Option<&'static [&'static str]> {
    Some(match provider {
        "entra" => &["tenant_id", "client_id", "client_secret", "scope"],
        "okta" => &["domain", "api_token", "client_id", "private_key", "key_id", "scopes"],
        "google" => &["service_account_key", "subject", "customer"],
        "jumpcloud" => &["api_key", "org_id"],
        "keycloak" => &["realm", "client_id", "client_secret"],
        "auth0" => &["domain", "client_id", "client_secret", "audience", "groups"],
        "authentik" => &["api_token"],
        "zitadel" => &["pat", "key_file", "client_id", "client_secret", "groups"],
        _ => return None,
    })
}

/// Reads one table, remembering which keys were used so that the rest can be refused.
struct Reader {
    table: toml::Table,
    label: String,
    used: BTreeSet<String>,
}

impl Reader {
    fn error(&self, message: impl std::fmt::Display) -> String {
        format!("{}: {message}", self.label)
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, String> {
        self.used.insert(key.to_owned());
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(value)) => Ok(Some(value.clone())),
            Some(other) => Err(self.error(format!("`{key}` must be a string, not {}", other.type_str()))),
        }
    }

    fn required(&mut self, key: &str) -> Result<String, String> {
        self.string(key)?
            .ok_or_else(|| self.error(format!("missing required key `{key}`")))
    }

    fn secret(&mut self, key: &str) -> Result<Option<Secret>, String> {
        match self.string(key)? {
            None => Ok(None),
            Some(value) => Secret::resolve(&value)
                .map(Some)
                .map_err(|why| self.error(format!("`{key}`: {why}"))),
        }
    }

    fn required_secret(&mut self, key: &str) -> Result<Secret, String> {
        self.secret(key)?
            .ok_or_else(|| self.error(format!("missing required key `{key}`")))
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>, String> {
        self.used.insert(key.to_owned());
        match self.table.get(key) {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(value) => Ok(value.clone()),
                    other => Err(self.error(format!("`{key}` must list strings, not {}", other.type_str()))),
                })
                .collect(),
            Some(other) => Err(self.error(format!("`{key}` must be a list of strings, not {}", other.type_str()))),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<bool, String> {
        self.used.insert(key.to_owned());
        match self.table.get(key) {
            None => Ok(false),
            Some(toml::Value::Boolean(value)) => Ok(*value),
            Some(other) => Err(self.error(format!("`{key}` must be true or false, not {}", other.type_str()))),
        }
    }

    fn duration(&mut self, key: &str, default: Duration) -> Result<Duration, String> {
        match self.string(key)? {
            None => Ok(default),
            Some(text) => match humantime::parse_duration(&text) {
                Ok(value) if !value.is_zero() => Ok(value),
                Ok(_) => Err(self.error(format!("`{key}` must be longer than zero"))),
                Err(error) => Err(self.error(format!("`{key}` = {text:?} is not a duration such as \"5m\": {error}"))),
            },
        }
    }

    fn url(&mut self, key: &str) -> Result<Option<Url>, String> {
        match self.string(key)? {
            None => Ok(None),
            Some(text) => {
                let url = Url::parse(text.trim_end_matches('/'))
                    .map_err(|error| self.error(format!("`{key}` = {text:?} is not a URL: {error}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
                    return Err(self.error(format!("`{key}` = {text:?} must be an http(s) URL")));
                }
                Ok(Some(url))
            }
        }
    }

    fn required_url(&mut self, key: &str) -> Result<Url, String> {
        self.url(key)?
            .ok_or_else(|| self.error(format!("missing required key `{key}`")))
    }

    fn choice<T: Copy>(&mut self, key: &str, default: T, choices: &[(&str, T)]) -> Result<T, String> {
        match self.string(key)? {
            None => Ok(default),
            Some(text) => choices
                .iter()
                .find(|(name, _)| *name == text)
                .map(|(_, value)| *value)
                .ok_or_else(|| {
                    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                    self.error(format!("`{key}` must be one of {}, not {text:?}", names.join(", ")))
                }),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.table.keys().find(|key| !self.used.contains(*key)) {
            Some(key) => Err(self.error(format!("key `{key}` does not apply with the other keys given"))),
            None => Ok(()),
        }
    }
}

fn parse_url(text: &str) -> Url {
    Url::parse(text).expect("built-in URLs parse")
}

/// `base` with `path` appended (`path` starts with `/`).
fn joined(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined_path = format!("{}{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined_path);
    url
}

fn service_account(reader: &mut Reader, key: &str, google: bool) -> Result<ServiceAccountKey, String> {
    let secret = reader.required_secret(key)?;
    let json: serde_json::Value = serde_json::from_str(secret.expose())
        .map_err(|error| reader.error(format!("`{key}` is not a JSON key file: {error}")))?;
    let field = |name: &str| json.get(name).and_then(|value| value.as_str()).map(str::to_owned);
    let (issuer, key_id, private_key) = if google {
        (field("client_email"), field("private_key_id"), field("private_key"))
    } else {
        (field("userId"), field("keyId"), field("key"))
    };
    let missing = if google {
        "client_email and private_key"
    } else {
        "userId, keyId and key"
    };
    match (issuer, private_key) {
        (Some(issuer), Some(private_key)) => Ok(ServiceAccountKey {
            issuer,
            key_id,
            private_key: Secret::resolve(&private_key).map_err(|why| reader.error(why))?,
        }),
        _ => Err(reader.error(format!("`{key}` must be a key file with {missing}"))),
    }
}

impl TryFrom<toml::Table> for IntegrationConfig {
    type Error = String;

    fn try_from(table: toml::Table) -> Result<Self, Self::Error> {
        let mut reader = Reader {
            table,
            label: "integration".to_owned(),
            used: BTreeSet::new(),
        };
        let name_text = reader.required("name")?;
        let name = IntegrationName::new(&name_text).map_err(|why| reader.error(why))?;
        reader.label = format!("integration `{name}`");
        let provider_name = reader.required("provider")?;
        // A misspelt key is reported as such, before the missing key it was meant to be.
        if let Some(specific) = provider_keys(&provider_name) {
            let unknown = reader
                .table
                .keys()
                .find(|key| !COMMON_KEYS.contains(&key.as_str()) && !specific.contains(&key.as_str()));
            if let Some(key) = unknown {
                return Err(reader.error(format!("unknown key `{key}`")));
            }
        }
        let interval = reader.duration("interval", Duration::from_secs(300))?;
        let full_resync = reader.duration("full_resync", Duration::from_secs(24 * 3600))?;
        let sync_timeout = reader.duration("sync_timeout", Duration::from_secs(1800))?;
        let request_timeout = reader.duration("request_timeout", Duration::from_secs(30))?;
        let base_url = reader.url("base_url")?;
        let token_url = reader.url("token_url")?;
        let groups = GroupFilter::new(reader.strings("include_groups")?, reader.strings("exclude_groups")?);
        let only_group_members = reader.boolean("only_group_members")?;
        let (base_url, provider) = match provider_name.as_str() {
            "entra" => {
                let base_url = base_url.unwrap_or_else(|| parse_url("https://graph.microsoft.com/v1.0"));
                let tenant_id = reader.string("tenant_id")?;
                let token_url = match (token_url, tenant_id) {
                    (Some(url), _) => url,
                    (None, Some(tenant)) => {
                        parse_url(&format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"))
                    }
                    (None, None) => return Err(reader.error("missing required key `tenant_id` (or `token_url`)")),
                };
                let scope = match reader.string("scope")? {
                    Some(scope) => scope,
                    None => format!("{}/.default", base_url.origin().ascii_serialization()),
                };
                let provider = ProviderConfig::Entra {
                    token_url,
                    client_id: reader.required("client_id")?,
                    client_secret: reader.required_secret("client_secret")?,
                    scope,
                };
                (base_url, provider)
            }
            "okta" => {
                let base_url = match base_url {
                    Some(url) => url,
                    None => {
                        let domain = reader.required("domain")?;
                        Url::parse(&format!("https://{domain}"))
                            .map_err(|error| reader.error(format!("`domain` = {domain:?}: {error}")))?
                    }
                };
                let auth = match reader.secret("api_token")? {
                    Some(token) => OktaAuth::ApiToken(token),
                    None => {
                        let Some(client_id) = reader.string("client_id")? else {
                            return Err(
                                reader.error("missing required key `api_token` (or `client_id` and `private_key`)")
                            );
                        };
                        OktaAuth::PrivateKeyJwt {
                            token_url: token_url.unwrap_or_else(|| joined(&base_url, "/oauth2/v1/token")),
                            client_id,
                            private_key: reader.required_secret("private_key")?,
                            key_id: reader.string("key_id")?,
                            scopes: reader
                                .string("scopes")?
                                .unwrap_or_else(|| "okta.users.read okta.groups.read".to_owned()),
                        }
                    }
                };
                (base_url, ProviderConfig::Okta { auth })
            }
            "google" => {
                let service_account = service_account(&mut reader, "service_account_key", true)?;
                let provider = ProviderConfig::Google {
                    token_url: token_url.unwrap_or_else(|| parse_url("https://oauth2.googleapis.com/token")),
                    service_account,
                    subject: reader.required("subject")?,
                    customer: reader.string("customer")?.unwrap_or_else(|| "my_customer".to_owned()),
                };
                (
                    base_url.unwrap_or_else(|| parse_url("https://admin.googleapis.com")),
                    provider,
                )
            }
            "jumpcloud" => {
                let provider = ProviderConfig::JumpCloud {
                    api_key: reader.required_secret("api_key")?,
                    org_id: reader.string("org_id")?,
                };
                (
                    base_url.unwrap_or_else(|| parse_url("https://console.jumpcloud.com/api")),
                    provider,
                )
            }
            "keycloak" => {
                let base_url = match base_url {
                    Some(url) => url,
                    None => return Err(reader.error("missing required key `base_url`")),
                };
                let realm = reader.required("realm")?;
                let provider = ProviderConfig::Keycloak {
                    token_url: token_url.unwrap_or_else(|| {
                        joined(&base_url, &format!("/realms/{realm}/protocol/openid-connect/token"))
                    }),
                    realm,
                    client_id: reader.required("client_id")?,
                    client_secret: reader.required_secret("client_secret")?,
                };
                (base_url, provider)
            }
            "auth0" => {
                let base_url = match (base_url, reader.string("domain")?) {
                    (Some(url), _) => url,
                    (None, Some(domain)) => Url::parse(&format!("https://{domain}/api/v2"))
                        .map_err(|error| reader.error(format!("`domain` = {domain:?}: {error}")))?,
                    (None, None) => return Err(reader.error("missing required key `domain` (or `base_url`)")),
                };
                let origin = base_url.origin().ascii_serialization();
                let provider = ProviderConfig::Auth0 {
                    token_url: token_url.unwrap_or_else(|| parse_url(&format!("{origin}/oauth/token"))),
                    client_id: reader.required("client_id")?,
                    client_secret: reader.required_secret("client_secret")?,
                    audience: reader
                        .string("audience")?
                        .unwrap_or_else(|| format!("{origin}/api/v2/")),
                    groups: reader.choice(
                        "groups",
                        Auth0Groups::Roles,
                        &[
                            ("roles", Auth0Groups::Roles),
                            ("organizations", Auth0Groups::Organizations),
                            ("both", Auth0Groups::Both),
                        ],
                    )?,
                };
                (base_url, provider)
            }
            "authentik" => {
                let base_url = reader.required_url("base_url")?;
                let provider = ProviderConfig::Authentik {
                    api_token: reader.required_secret("api_token")?,
                };
                (base_url, provider)
            }
            "zitadel" => {
                let base_url = reader.required_url("base_url")?;
                let token_url = token_url.unwrap_or_else(|| joined(&base_url, "/oauth/v2/token"));
                let auth = if let Some(pat) = reader.secret("pat")? {
                    ZitadelAuth::Pat(pat)
                } else if reader.table.contains_key("key_file") {
                    ZitadelAuth::JwtProfile {
                        token_url,
                        key: service_account(&mut reader, "key_file", false)?,
                    }
                } else if let Some(client_id) = reader.string("client_id")? {
                    ZitadelAuth::ClientSecret {
                        token_url,
                        client_id,
                        client_secret: reader.required_secret("client_secret")?,
                    }
                } else {
                    return Err(
                        reader.error("missing required key `pat` (or `key_file`, or `client_id` and `client_secret`)")
                    );
                };
                let groups = reader.choice(
                    "groups",
                    ZitadelGroups::Authorizations,
                    &[
                        ("authorizations", ZitadelGroups::Authorizations),
                        ("groups", ZitadelGroups::Groups),
                    ],
                )?;
                (base_url, ProviderConfig::Zitadel { auth, groups })
            }
            other => {
                return Err(reader.error(format!(
                    "`provider` must be one of entra, okta, google, jumpcloud, keycloak, auth0, authentik, zitadel, not {other:?}"
                )));
            }
        };
        reader.finish()?;
        Ok(IntegrationConfig {
            name,
            interval,
            full_resync,
            sync_timeout,
            request_timeout,
            base_url,
            groups,
            only_group_members,
            provider,
        })
    }
}

impl IntegrationConfig {
    /// The provider's name as the configuration spells it.
    pub fn provider_name(&self) -> &'static str {
        match &self.provider {
            ProviderConfig::Entra { .. } => "entra",
            ProviderConfig::Okta { .. } => "okta",
            ProviderConfig::Google { .. } => "google",
            ProviderConfig::JumpCloud { .. } => "jumpcloud",
            ProviderConfig::Keycloak { .. } => "keycloak",
            ProviderConfig::Auth0 { .. } => "auth0",
            ProviderConfig::Authentik { .. } => "authentik",
            ProviderConfig::Zitadel { .. } => "zitadel",
        }
    }

    /// Parses one `[[tenant.integration]]` table given as TOML text (for tests and tools).
    pub fn from_toml(text: &str) -> Result<IntegrationConfig, String> {
        let table: toml::Table = toml::from_str(text).map_err(|error| error.to_string())?;
        IntegrationConfig::try_from(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_error(text: &str, expected: &str) {
        let error = IntegrationConfig::from_toml(text).unwrap_err();
        assert!(error.contains(expected), "{error:?} should contain {expected:?}");
    }

    #[test]
    fn the_issue_example_parses() {
        let config = IntegrationConfig::from_toml(
            r#"
            name = "entra"
            provider = "entra"
            interval = "5m"
            base_url = "https://graph.microsoft.us/v1.0"
            tenant_id = "contoso"
            client_id = "app"
            client_secret = "s3cret"
            include_groups = ["vpn-*"]
            exclude_groups = []
            "#,
        )
        .unwrap();
        assert_eq!(config.interval, Duration::from_secs(300));
        assert_eq!(config.base_url.as_str(), "https://graph.microsoft.us/v1.0");
        let ProviderConfig::Entra { token_url, scope, .. } = &config.provider else {
            panic!("entra expected");
        };
        assert_eq!(
            token_url.as_str(),
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
        );
        assert_eq!(scope, "https://graph.microsoft.us/.default");
        assert!(config.groups.allows("vpn-eng") && !config.groups.allows("eng"));
    }

    #[test]
    fn mistakes_name_the_integration_and_the_key() {
        check_error(
            "name = \"okta\"\nprovider = \"okta\"\ndomain = \"x.okta.com\"\napi_tokn = \"t\"",
            "integration `okta`: unknown key `api_tokn`",
        );
        check_error(
            "name = \"kc\"\nprovider = \"keycloak\"\nbase_url = \"https://kc\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "integration `kc`: missing required key `realm`",
        );
        check_error("name = \"x\"\nprovider = \"ldap\"", "`provider` must be one of");
        check_error(
            "name = \"a\"\nprovider = \"authentik\"\nbase_url = \"https://a/api/v3\"\napi_token = \"env:IDPSYNC_UNSET_FOR_TEST\"",
            "integration `a`: `api_token`: the environment variable IDPSYNC_UNSET_FOR_TEST is not set",
        );
        check_error(
            "name = \"j\"\nprovider = \"jumpcloud\"\napi_key = \"k\"\ninterval = \"soon\"",
            "integration `j`: `interval`",
        );
        check_error("provider = \"jumpcloud\"", "integration: missing required key `name`");
    }

    #[test]
    fn defaults_follow_the_vendor_contracts() {
        let auth0 = IntegrationConfig::from_toml(
            "name = \"a0\"\nprovider = \"auth0\"\ndomain = \"acme.eu.auth0.com\"\nclient_id = \"c\"\nclient_secret = \"s\"\ngroups = \"both\"",
        )
        .unwrap();
        assert_eq!(auth0.base_url.as_str(), "https://acme.eu.auth0.com/api/v2");
        let ProviderConfig::Auth0 {
            token_url,
            audience,
            groups,
            ..
        } = &auth0.provider
        else {
            panic!("auth0 expected");
        };
        assert_eq!(token_url.as_str(), "https://acme.eu.auth0.com/oauth/token");
        assert_eq!(audience, "https://acme.eu.auth0.com/api/v2/");
        assert_eq!(*groups, Auth0Groups::Both);
        let keycloak = IntegrationConfig::from_toml(
            "name = \"kc\"\nprovider = \"keycloak\"\nbase_url = \"https://sso.example.com/\"\nrealm = \"acme\"\nclient_id = \"c\"\nclient_secret = \"s\"",
        )
        .unwrap();
        let ProviderConfig::Keycloak { token_url, .. } = &keycloak.provider else {
            panic!("keycloak expected");
        };
        assert_eq!(
            token_url.as_str(),
            "https://sso.example.com/realms/acme/protocol/openid-connect/token"
        );
    }
}
