//! `public_url`: the address clients reach the service at, through a proxy, which SCIM's
//! absolute URLs (`Location`, `meta.location`, `$ref`) are built on instead of the request's
//! `Host` and `X-Forwarded-Proto`.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// An absolute `http` or `https` URL with a host and nothing after its path: no query, no
/// fragment, no user or password. Kept without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PublicUrl(String);

/// Why a `public_url` is refused.
#[derive(Debug, thiserror::Error)]
#[error("public_url {url:?}: {reason} (e.g. public_url = \"https://idpsync.example.com\")")]
pub struct InvalidPublicUrl {
    url: String,
    reason: &'static str,
}

impl PublicUrl {
    /// The URL of `path` (which starts with `/`) under this one.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl FromStr for PublicUrl {
    type Err = InvalidPublicUrl;

    fn from_str(text: &str) -> Result<PublicUrl, InvalidPublicUrl> {
        let refuse = |reason| InvalidPublicUrl {
            url: text.to_owned(),
            reason,
        };
        let url = url::Url::parse(text).map_err(|_| refuse("not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("it names no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("it may not have a query or a fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refuse("it may not carry a user or password"));
        }
        Ok(PublicUrl(url.as_str().trim_end_matches('/').to_owned()))
    }
}

impl TryFrom<String> for PublicUrl {
    type Error = InvalidPublicUrl;

    fn try_from(text: String) -> Result<PublicUrl, InvalidPublicUrl> {
        text.parse()
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::PublicUrl;

    #[test]
    fn a_public_url_is_absolute_and_bare() {
        let url: PublicUrl = "https://idpsync.example.com/".parse().unwrap();
        assert_eq!(url.join("/scim/v2"), "https://idpsync.example.com/scim/v2");
        let prefixed: PublicUrl = "https://example.com/idpsync".parse().unwrap();
        assert_eq!(prefixed.join("/scim/v2"), "https://example.com/idpsync/scim/v2");
        for bad in [
            "idpsync.example.com",
            "ftp://example.com",
            "https://example.com/?a=b",
            "https://example.com/#top",
            "https://user:pw@example.com",
            "/scim",
        ] {
            let error = bad.parse::<PublicUrl>().unwrap_err().to_string();
            assert!(error.contains("public_url"), "{bad}: {error}");
        }
    }
}
