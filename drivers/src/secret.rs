//! [`Secret`]: a credential from the configuration, given literally, as `env:NAME` or as
//! `file:PATH`, resolved once when the configuration is read. Its `Debug` never shows it.

use std::fmt;

/// A resolved secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Resolves a configuration value: `env:NAME` reads the environment variable, `file:PATH`
    /// reads the file (one trailing newline removed), anything else is the secret itself.
    pub fn resolve(value: &str) -> Result<Secret, String> {
        if let Some(name) = value.strip_prefix("env:") {
            return match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(Secret(value)),
                Ok(_) => Err(format!("the environment variable {name} is empty")),
                Err(_) => Err(format!("the environment variable {name} is not set")),
            };
        }
        if let Some(path) = value.strip_prefix("file:") {
            let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.is_empty() {
                return Err(format!("the file {path} is empty"));
            }
            return Ok(Secret(text.to_owned()));
        }
        if value.is_empty() {
            return Err("the value is empty".to_owned());
        }
        Ok(Secret(value.to_owned()))
    }

    /// The secret, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
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
        assert!(
            Secret::resolve("env:IDPSYNC_TEST_SURELY_UNSET")
                .unwrap_err()
                .contains("not set")
        );
        assert!(
            Secret::resolve("file:/nonexistent/idpsync")
                .unwrap_err()
                .contains("cannot read")
        );
        assert_eq!(format!("{:?}", Secret::resolve("x").unwrap()), "Secret(…)");
    }
}
