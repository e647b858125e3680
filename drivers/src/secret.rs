//! [`SecretRef`]: a credential as the configuration gives it, literally, as `env:NAME` or as
//! `file:PATH`. Reading the configuration checks only its form; the variable or the file is
//! read when a driver is built ([`SecretRef::resolve`]), so commands that never talk to an IdP
//! work without the IdP's credentials. [`Secret`]: a resolved value. Neither `Debug` shows it.
//! [`KeyFile`]: a secret that holds a JSON key file, parsed when it is resolved.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::keys::KeyError;

/// A resolved secret value.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

/// A secret setting as written: where its value comes from, checked in form only.
#[derive(Clone)]
pub(crate) struct SecretRef(Source);

/// Where a secret's value comes from.
#[derive(Clone)]
enum Source {
    /// The value itself.
    Literal(String),
    /// An environment variable.
    Env(String),
    /// A file, one trailing newline removed.
    File(PathBuf),
}

/// Why a configuration value is not a secret, or does not resolve to one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretError {
    /// `env:NAME` names a variable that is not set.
    #[error("the environment variable {name} is not set")]
    EnvUnset { name: String },
    /// `env:NAME` names a variable that is empty.
    #[error("the environment variable {name} is empty")]
    EnvEmpty { name: String },
    /// `env:` followed by something that cannot name a variable.
    #[error("`env:` must be followed by the name of an environment variable, not {name:?}")]
    EnvName { name: String },
    /// `file:` without a path.
    #[error("`file:` must be followed by the path of a file")]
    NoPath,
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

impl SecretRef {
    /// Reads a configuration value without resolving it: `env:NAME` (a variable name: not
    /// empty, without `=` or NUL), `file:PATH` (a path), anything else is the secret itself.
    pub(crate) fn parse(value: &str) -> Result<SecretRef, SecretError> {
        if let Some(name) = value.strip_prefix("env:") {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(SecretError::EnvName { name: name.to_owned() });
            }
            return Ok(SecretRef(Source::Env(name.to_owned())));
        }
        if let Some(path) = value.strip_prefix("file:") {
            if path.is_empty() || path.contains('\0') {
                return Err(SecretError::NoPath);
            }
            return Ok(SecretRef(Source::File(PathBuf::from(path))));
        }
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(SecretRef(Source::Literal(value.to_owned())))
    }

    /// The value: the literal, the variable's value, or the file's content (one trailing
    /// newline removed). Read anew on each call.
    pub(crate) fn value(&self) -> Result<Secret, SecretError> {
        match &self.0 {
            Source::Literal(value) => Ok(Secret(value.clone())),
            Source::Env(name) => match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret(value)),
                Ok(_) => Err(SecretError::EnvEmpty { name: name.clone() }),
                Err(_) => Err(SecretError::EnvUnset { name: name.clone() }),
            },
            Source::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::Unreadable {
                    path: path.clone(),
                    source,
                })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                if text.is_empty() {
                    return Err(SecretError::FileEmpty { path: path.clone() });
                }
                Ok(Secret(text.to_owned()))
            }
        }
    }

    /// The value of the setting `key`, for building a driver: a failure names the key.
    pub(crate) fn resolve(&self, key: &str) -> Result<Secret, KeyError> {
        self.value().map_err(|error| KeyError::invalid(key, error))
    }
}

impl Secret {
    /// The secret, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// A secret setting is a string, checked in form as it is read and resolved later.
impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SecretRef, D::Error> {
        let value = String::deserialize(deserializer)?;
        SecretRef::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// A secret inside a key file (already resolved) is the string itself, not empty.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        let value = String::deserialize(deserializer)?;
        if value.is_empty() {
            return Err(serde::de::Error::custom(SecretError::Empty));
        }
        Ok(Secret(value))
    }
}

/// A setting whose value, given like a secret (literally, `env:NAME` or `file:PATH`), is a JSON
/// document of the shape `T`: a service account's key file. It is parsed when it is resolved.
pub(crate) struct KeyFile<T> {
    secret: SecretRef,
    shape: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> KeyFile<T> {
    /// The key file of the setting `key`, read and parsed: a failure names the key.
    pub(crate) fn resolve(&self, key: &str) -> Result<T, KeyError> {
        let secret = self.secret.resolve(key)?;
        serde_json::from_str(secret.expose())
            .map_err(|error| KeyError::invalid(key, format!("not a usable JSON key file: {error}")))
    }
}

impl<'de, T> Deserialize<'de> for KeyFile<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KeyFile<T>, D::Error> {
        Ok(KeyFile {
            secret: SecretRef::deserialize(deserializer)?,
            shape: PhantomData,
        })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Not even the reference: a literal is the secret itself.
impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl<T> fmt::Debug for KeyFile<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyFile(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_env_and_file() {
        assert_eq!(SecretRef::parse("s3cret").unwrap().value().unwrap().expose(), "s3cret");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let from_file = SecretRef::parse(&format!("file:{}", path.display())).unwrap();
        assert_eq!(from_file.value().unwrap().expose(), "from-file");
        let unreadable = SecretRef::parse("file:/nonexistent/idpsync")
            .unwrap()
            .value()
            .unwrap_err();
        assert!(unreadable.to_string().contains("cannot read"), "{unreadable}");
        assert!(matches!(SecretRef::parse(""), Err(SecretError::Empty)));
        assert_eq!(
            format!("{:?}", SecretRef::parse("x").unwrap().value().unwrap()),
            "Secret(…)"
        );
        assert_eq!(format!("{:?}", SecretRef::parse("x").unwrap()), "Secret(…)");
    }

    #[test]
    fn reading_checks_the_form_and_defers_the_value() {
        // An unset variable or an absent file is not an error until the value is needed.
        let unset = SecretRef::parse("env:IDPSYNC_TEST_SURELY_UNSET").unwrap();
        assert_eq!(
            unset.resolve("api_token").unwrap_err().to_string(),
            "key `api_token`: the environment variable IDPSYNC_TEST_SURELY_UNSET is not set"
        );
        let absent = SecretRef::parse("file:/nonexistent/idpsync").unwrap();
        assert!(
            absent
                .resolve("pat")
                .unwrap_err()
                .to_string()
                .starts_with("key `pat`: cannot read")
        );
        // A malformed reference is refused as it is read.
        assert!(matches!(SecretRef::parse("env:"), Err(SecretError::EnvName { .. })));
        assert!(matches!(SecretRef::parse("env:A=B"), Err(SecretError::EnvName { .. })));
        assert!(matches!(SecretRef::parse("file:"), Err(SecretError::NoPath)));
    }

    #[test]
    fn a_file_is_read_when_resolved_not_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let secret = SecretRef::parse(&format!("file:{}", path.display())).unwrap();
        assert!(secret.value().is_err());
        std::fs::write(&path, "later\r\n").unwrap();
        assert_eq!(secret.value().unwrap().expose(), "later");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(secret.value(), Err(SecretError::FileEmpty { .. })));
    }

    #[test]
    fn a_key_file_is_parsed_when_resolved() {
        #[derive(Deserialize)]
        struct Shape {
            id: String,
        }
        let parse = |value: &str| KeyFile::<Shape>::deserialize(serde_json::Value::from(value)).unwrap();
        assert_eq!(parse(r#"{"id":"a"}"#).resolve("key_file").unwrap().id, "a");
        let Err(error) = parse("{}").resolve("key_file") else {
            panic!("an empty document is not a key file");
        };
        let error = error.to_string();
        assert!(
            error.starts_with("key `key_file`: not a usable JSON key file"),
            "{error}"
        );
        assert_eq!(format!("{:?}", parse("{}")), "KeyFile(…)");
    }
}
