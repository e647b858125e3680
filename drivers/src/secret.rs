//! [`Secret`]: a credential from the configuration, given literally, as `env:NAME` or as
//! `file:PATH`, resolved once when the configuration is read. Its `Debug` never shows it.
//! [`KeyFile`]: a secret that holds a JSON key file.

use std::fmt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A resolved secret value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

/// Why a configuration value does not resolve to a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// `env:NAME` names a variable that is not set.
    #[error("the environment variable {name} is not set")]
    EnvUnset { name: String },
    /// `env:NAME` names a variable that is empty.
    #[error("the environment variable {name} is empty")]
    EnvEmpty { name: String },
    /// `file:PATH` names a file that cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// `file:PATH` names an empty file.
    #[error("the file {} is empty", path.display())]
    FileEmpty { path: PathBuf },
    /// The value itself is empty.
    #[error("the value is empty")]
    Empty,
}

impl Secret {
    /// Resolves a configuration value: `env:NAME` reads the environment variable, `file:PATH`
    /// reads the file (one trailing newline removed), anything else is the secret itself.
    pub(crate) fn resolve(value: &str) -> Result<Secret, SecretError> {
        if let Some(name) = value.strip_prefix("env:") {
            return match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret(value)),
                Ok(_) => Err(SecretError::EnvEmpty { name: name.to_owned() }),
                Err(_) => Err(SecretError::EnvUnset { name: name.to_owned() }),
            };
        }
        if let Some(path) = value.strip_prefix("file:") {
            let path = PathBuf::from(path);
            let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Unreadable {
                path: path.clone(),
                source,
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.is_empty() {
                return Err(SecretError::FileEmpty { path });
            }
            return Ok(Secret(text.to_owned()));
        }
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Secret(value.to_owned()))
    }

    /// The secret, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// A secret setting is a string, resolved as it is read.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        let value = String::deserialize(deserializer)?;
        Secret::resolve(&value).map_err(serde::de::Error::custom)
    }
}

/// A setting whose value, given like a secret (literally, `env:NAME` or `file:PATH`), is a JSON
/// document of the shape `T`: a service account's key file.
pub(crate) struct KeyFile<T>(pub(crate) T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for KeyFile<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KeyFile<T>, D::Error> {
        let secret = Secret::deserialize(deserializer)?;
        serde_json::from_str(secret.expose())
            .map(KeyFile)
            .map_err(|error| serde::de::Error::custom(format!("not a usable JSON key file: {error}")))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_env_and_file() {
        assert_eq!(Secret::resolve("s3cret").unwrap().expose(), "s3cret");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        assert_eq!(
            Secret::resolve(&format!("file:{}", path.display())).unwrap().expose(),
            "from-file"
        );
        assert!(matches!(
            Secret::resolve("env:IDPSYNC_TEST_SURELY_UNSET"),
            Err(SecretError::EnvUnset { .. })
        ));
        let unreadable = Secret::resolve("file:/nonexistent/idpsync").unwrap_err();
        assert!(unreadable.to_string().contains("cannot read"), "{unreadable}");
        assert!(matches!(Secret::resolve(""), Err(SecretError::Empty)));
        assert_eq!(format!("{:?}", Secret::resolve("x").unwrap()), "Secret(…)");
    }
}
