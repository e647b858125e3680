//! Where a [`super::PostgresStore`] connects: the URL of the `storage` setting, read once into
//! the driver's configuration, the TLS mode and the schema the store's tables live in.
//!
//! The URL is libpq's (`postgres://user:password@host:port/database?key=value`), with every key
//! tokio-postgres knows, and three read here:
//!
//! - `sslmode`: `disable`, `prefer` (the default, as libpq's), `require`, `verify-ca` or
//!   `verify-full`; see [`TlsMode`];
//! - `sslrootcert`: a PEM file of the certificate authorities `verify-ca` and `verify-full`
//!   trust, instead of the system's;
//! - `schema`: the schema of the store's tables (default `idpsync`), so that several
//!   deployments, or tests, can share one database.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The schema the tables live in when the URL does not say.
pub const DEFAULT_SCHEMA: &str = "idpsync";

/// How long opening a connection may take before the database counts as unreachable.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the connection is protected. PostgreSQL's own names and meanings (libpq), carried out by
/// rustls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, plain TCP otherwise; the server's certificate is not
    /// checked (libpq's default: it protects against eavesdropping only).
    Prefer,
    /// TLS or no connection; the server's certificate is not checked.
    Require,
    /// TLS, with a certificate issued by a trusted authority (any host name).
    VerifyCa,
    /// TLS, with a certificate issued by a trusted authority for the host connected to.
    VerifyFull,
}

impl FromStr for TlsMode {
    type Err = InvalidPostgresUrl;

    fn from_str(text: &str) -> Result<TlsMode, InvalidPostgresUrl> {
        match text {
            "disable" => Ok(TlsMode::Disable),
            "prefer" => Ok(TlsMode::Prefer),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(InvalidPostgresUrl(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            ))),
        }
    }
}

/// Why a URL cannot be used to reach PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid PostgreSQL URL: {0}")]
pub struct InvalidPostgresUrl(String);

/// Everything needed to open connections to the store's database.
#[derive(Clone)]
pub struct PostgresSettings {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: TlsMode,
    pub(super) root_certificates: Option<PathBuf>,
    pub(super) schema: String,
    redacted: String,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: only the redacted form is ever shown.
        f.debug_struct("PostgresSettings")
            .field("url", &self.redacted)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresSettings {
    /// Reads a `postgres://` (or `postgresql://`) URL.
    pub fn from_url(url: &str) -> Result<PostgresSettings, InvalidPostgresUrl> {
        let mut parsed = url::Url::parse(url).map_err(|e| InvalidPostgresUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(InvalidPostgresUrl(format!(
                "the URL must start with postgres:// or postgresql://, not {}://",
                parsed.scheme()
            )));
        }
        let mut tls = TlsMode::Prefer;
        let mut root_certificates = None;
        let mut schema = DEFAULT_SCHEMA.to_owned();
        let mut passed_on = Vec::new();
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "sslmode" => tls = value.parse()?,
                "sslrootcert" => root_certificates = Some(PathBuf::from(&*value)),
                "schema" => schema = checked_schema(&value)?,
                _ => passed_on.push((key.into_owned(), value.into_owned())),
            }
        }
        if passed_on.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(&passed_on);
        }
        let mut config =
            tokio_postgres::Config::from_str(parsed.as_str()).map_err(|e| InvalidPostgresUrl(e.to_string()))?;
        config.ssl_mode(match tls {
            TlsMode::Disable => tokio_postgres::config::SslMode::Disable,
            TlsMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("idpsync");
        }
        let redacted = redact(url);
        Ok(PostgresSettings {
            config,
            tls,
            root_certificates,
            schema,
            redacted,
        })
    }

    /// The same database, tables in `schema`.
    pub fn with_schema(mut self, schema: &str) -> Result<PostgresSettings, InvalidPostgresUrl> {
        self.schema = checked_schema(schema)?;
        Ok(self)
    }

    /// The URL with its password replaced by `***`: what logs and errors show.
    pub fn redacted_url(&self) -> &str {
        &self.redacted
    }

    /// The schema of the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// How the connection is protected.
    pub fn tls(&self) -> TlsMode {
        self.tls
    }
}

/// A schema name that needs no quoting and cannot be mistaken for anything else: a lower-case
/// letter or `_`, then up to 62 lower-case letters, digits or `_`.
fn checked_schema(name: &str) -> Result<String, InvalidPostgresUrl> {
    let valid = name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(name.to_owned())
    } else {
        Err(InvalidPostgresUrl(format!(
            "schema={name:?}: use 1 to 63 characters from a-z, 0-9 and '_', not starting with a digit"
        )))
    }
}

/// `url` with any password replaced by `***`; a text that does not parse is not shown at all.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_keys_are_taken_out_and_the_rest_passed_on() {
        let settings = PostgresSettings::from_url(
            "postgres://app:s3cret@db.example:6432/idp?sslmode=verify-full&schema=tenant_eu&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(settings.tls(), TlsMode::VerifyFull);
        assert_eq!(settings.schema(), "tenant_eu");
        assert_eq!(settings.config.get_dbname(), Some("idp"));
        assert_eq!(settings.config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(
            settings.redacted_url(),
            "postgres://app:***@db.example:6432/idp?sslmode=verify-full&schema=tenant_eu&connect_timeout=3"
        );
        assert!(!format!("{settings:?}").contains("s3cret"));
        let plain = PostgresSettings::from_url("postgresql://localhost/test").unwrap();
        assert_eq!((plain.tls(), plain.schema()), (TlsMode::Prefer, DEFAULT_SCHEMA));
        assert_eq!(plain.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn mistakes_are_named() {
        let error = |url: &str| PostgresSettings::from_url(url).unwrap_err().to_string();
        assert!(error("mysql://localhost/x").contains("postgres://"));
        assert!(error("postgres://localhost/x?sslmode=always").contains("sslmode=always"));
        assert!(error("postgres://localhost/x?schema=Bad-Name").contains("schema"));
        let unknown = error("postgres://localhost/x?frobnicate=1");
        assert!(unknown.contains("invalid PostgreSQL URL"), "{unknown}");
        assert_eq!(redact("not a url"), "(a URL that does not parse)");
    }
}
