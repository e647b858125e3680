//! Certificate credentials: an RSA private key and the X.509 certificate registered for it,
//! both PEM, as the Microsoft identity platform takes them for client assertions. They are read
//! when the driver is built, and checked to be a pair there: an assertion the key signs must
//! verify with the certificate's public key, so a key that is not the certificate's is a
//! configuration error at start, not a refused token at every run. The certificate itself
//! never travels; assertions name it by its SHA-256 thumbprint (`x5t#S256`).

use std::time::{Duration, SystemTime};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};
use x509_cert::der::Decode;
use x509_cert::spki::ObjectIdentifier;

use crate::auth::Signer;
use crate::keys::KeyError;
use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `rsaEncryption` (RFC 8017, appendix A.1): the only key a certificate credential may hold.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// How long before its certificate expires a driver built with it warns.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// The PEM labels of an unencrypted RSA private key: PKCS #8 and PKCS #1.
const PRIVATE_KEY_LABELS: [&str; 2] = ["PRIVATE KEY", "RSA PRIVATE KEY"];

/// One setting's PEM text, and the setting's name for its errors.
#[derive(Clone, Copy)]
pub(crate) struct PemSetting<'a> {
    /// The setting (`private_key`, `certificate`).
    pub(crate) key: &'static str,
    /// Its resolved value.
    pub(crate) text: &'a Secret,
}

/// An X.509 certificate with an RSA key: what an assertion names and is checked against.
#[derive(Clone)]
pub(crate) struct Certificate {
    thumbprint: String,
    public_key: DecodingKey,
    not_after: SystemTime,
}

impl Certificate {
    /// The first certificate in `pem` (a chain starts with the certificate itself).
    pub(crate) fn from_pem(pem: &str) -> Result<Certificate, String> {
        let blocks = pem::parse_many(pem).map_err(|error| format!("not PEM: {error}"))?;
        let Some(block) = blocks.iter().find(|block| block.tag() == "CERTIFICATE") else {
            return Err("holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_owned());
        };
        Certificate::from_der(block.contents())
    }

    fn from_der(der: &[u8]) -> Result<Certificate, String> {
        let certificate =
            x509_cert::Certificate::from_der(der).map_err(|error| format!("not an X.509 certificate: {error}"))?;
        let key_info = &certificate.tbs_certificate.subject_public_key_info;
        if key_info.algorithm.oid != RSA_ENCRYPTION {
            return Err(format!(
                "the certificate's key is not an RSA key (its algorithm is {}); Entra's certificate credentials are RSA",
                key_info.algorithm.oid
            ));
        }
        Ok(Certificate {
            thumbprint: thumbprint(der),
            // The subject public key of `rsaEncryption` is a PKCS #1 `RSAPublicKey`.
            public_key: DecodingKey::from_rsa_der(key_info.subject_public_key.raw_bytes()),
            not_after: certificate.tbs_certificate.validity.not_after.to_system_time(),
        })
    }

    /// The base64url SHA-256 thumbprint of the certificate's DER (`x5t#S256`), by which the fake
    /// Entra recognises the certificate an assertion names.
    #[cfg(any(test, feature = "fake"))]
    pub(crate) fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The certificate's public key, to verify assertions with.
    pub(crate) fn public_key(&self) -> &DecodingKey {
        &self.public_key
    }
}

/// The base64url SHA-256 thumbprint of a certificate's DER encoding.
fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

/// The signer of `private_key`, registered with the certificate in `certificate` (which may be
/// the same setting: one PEM holding the key and the certificate). Every mistake is one line
/// naming its setting: no key, an encrypted key, no certificate, a key that is not the
/// certificate's.
pub(crate) fn signer(private_key: PemSetting<'_>, certificate: PemSetting<'_>) -> Result<Signer, KeyError> {
    let key = private_key_of(private_key)?;
    let registered = Certificate::from_pem(certificate.text.expose()).map_err(|message| {
        let hint = if certificate.key == private_key.key {
            "; put the certificate's PEM after the key, or give it in `certificate`"
        } else {
            ""
        };
        KeyError::invalid(certificate.key, format!("{message}{hint}"))
    })?;
    // A probe signed with the key must verify with the certificate's public key.
    let probe = b"idpsync certificate credential";
    let signature = jsonwebtoken::crypto::sign(probe, &key, Algorithm::PS256)
        .map_err(|error| KeyError::invalid(private_key.key, format!("the RSA key cannot sign: {error}")))?;
    let pair =
        jsonwebtoken::crypto::verify(&signature, probe, registered.public_key(), Algorithm::PS256).unwrap_or(false);
    if !pair {
        return Err(KeyError::invalid(
            private_key.key,
            format!(
                "the private key is not the certificate's (`{}`): its signatures do not verify with the certificate's public key",
                certificate.key
            ),
        ));
    }
    warn_of_expiry(&registered, SystemTime::now());
    Ok(Signer::for_certificate(key, registered.thumbprint))
}

/// Warns when the certificate has expired, or expires within [`EXPIRY_WARNING`]: Entra refuses
/// the assertions of an expired certificate, and every run would then fail. Returns whether it
/// warned.
fn warn_of_expiry(certificate: &Certificate, now: SystemTime) -> bool {
    let expires = humantime::format_rfc3339_seconds(certificate.not_after);
    match certificate.not_after.duration_since(now) {
        Err(_) => {
            tracing::warn!(thumbprint = %certificate.thumbprint, %expires, "the certificate has expired: Entra refuses its assertions; upload a new one to the app registration and give its key");
            true
        }
        Ok(left) if left < EXPIRY_WARNING => {
            tracing::warn!(thumbprint = %certificate.thumbprint, %expires, "the certificate expires soon: upload a new one to the app registration and give its key before then");
            true
        }
        Ok(_) => false,
    }
}

/// The RSA private key in the setting's PEM.
fn private_key_of(setting: PemSetting<'_>) -> Result<EncodingKey, KeyError> {
    let invalid = |message: String| KeyError::invalid(setting.key, message);
    let blocks = pem::parse_many(setting.text.expose()).map_err(|error| invalid(format!("not PEM: {error}")))?;
    let Some(block) = blocks.iter().find(|block| PRIVATE_KEY_LABELS.contains(&block.tag())) else {
        let found: Vec<&str> = blocks.iter().map(pem::Pem::tag).collect();
        return Err(invalid(if found.contains(&"ENCRYPTED PRIVATE KEY") {
            "the private key is encrypted; store it unencrypted (`openssl pkey -in key.pem -out plain.pem`) in a file only the service's user can read".to_owned()
        } else if found.contains(&"CERTIFICATE") {
            "holds a certificate but no private key (`-----BEGIN PRIVATE KEY-----`)".to_owned()
        } else {
            "holds no PEM private key (`-----BEGIN PRIVATE KEY-----` or `-----BEGIN RSA PRIVATE KEY-----`)".to_owned()
        }));
    };
    EncodingKey::from_rsa_pem(pem::encode(block).as_bytes())
        .map_err(|error| invalid(format!("the private key is not an RSA key: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test-only keys and self-signed certificates, generated with openssl for these tests
    // (`openssl req -new -x509 -key test_key.pem -out test_cert.pem -days 36500 -sha256`);
    // they protect nothing.
    const KEY: &str = include_str!("fake/test_key.pem");
    const CERTIFICATE: &str = include_str!("fake/test_cert.pem");
    const OTHER_KEY: &str = include_str!("fake/other_key.pem");
    const OTHER_CERTIFICATE: &str = include_str!("fake/other_cert.pem");

    fn secret(text: &str) -> Secret {
        serde_json::from_value(serde_json::Value::from(text)).unwrap()
    }

    fn check(key: &str, certificate: Option<&str>) -> Result<Signer, String> {
        let key = secret(key);
        let certificate = certificate.map(secret);
        let key_setting = PemSetting {
            key: "private_key",
            text: &key,
        };
        let certificate_setting = match &certificate {
            Some(text) => PemSetting {
                key: "certificate",
                text,
            },
            None => key_setting,
        };
        signer(key_setting, certificate_setting).map_err(|error| error.to_string())
    }

    #[test]
    fn the_thumbprint_is_the_base64url_sha_256_of_the_der() {
        // `openssl x509 -in test_cert.pem -outform der | openssl dgst -sha256 -binary | basenc
        // --base64url`, padding removed.
        let certificate = Certificate::from_pem(CERTIFICATE).unwrap();
        assert_eq!(certificate.thumbprint(), "gNB2sKvLFOXR36E7jYtD7HRcNx94echqAhYp9UyAndc");
        let other = Certificate::from_pem(OTHER_CERTIFICATE).unwrap();
        assert_eq!(other.thumbprint(), "LqTdoMGV0ecPEx9btToNziHgGbbX0sPTyKFDs-PAtlI");
    }

    #[test]
    fn a_certificate_near_or_past_its_end_is_warned_of() {
        // `openssl x509 -in test_cert.pem -noout -enddate`: Nov 13 11:01:00 2126 GMT.
        let certificate = Certificate::from_pem(CERTIFICATE).unwrap();
        let end = humantime::parse_rfc3339("2126-11-13T11:01:00Z").unwrap();
        assert_eq!(certificate.not_after, end);
        let day = Duration::from_secs(24 * 3600);
        assert!(!warn_of_expiry(&certificate, end - 31 * day));
        assert!(warn_of_expiry(&certificate, end - 29 * day));
        assert!(warn_of_expiry(&certificate, end + day));
    }

    #[test]
    fn a_key_and_its_certificate_sign_assertions_that_name_the_certificate() {
        // In two settings, PKCS #1 and PKCS #8 keys, and in one PEM, in either order.
        for (key, certificate) in [(KEY, Some(CERTIFICATE)), (OTHER_KEY, Some(OTHER_CERTIFICATE))] {
            check(key, certificate).unwrap();
        }
        let signer = check(&format!("{KEY}\n{CERTIFICATE}"), None).unwrap();
        assert!(format!("{signer:?}").contains("gNB2sKvLFOXR36E7jYtD7HRcNx94echqAhYp9UyAndc"));
        assert!(!format!("{signer:?}").contains("PRIVATE"));
        check(&format!("{OTHER_CERTIFICATE}\n{OTHER_KEY}"), None).unwrap();
    }

    #[test]
    fn every_mistake_is_one_line_naming_its_setting() {
        let cases = [
            (
                check(KEY, Some(OTHER_CERTIFICATE)),
                "key `private_key`: the private key is not the certificate's (`certificate`)",
            ),
            (
                check(&format!("{OTHER_KEY}\n{CERTIFICATE}"), None),
                "key `private_key`: the private key is not the certificate's (`private_key`)",
            ),
            (
                check(CERTIFICATE, None),
                "key `private_key`: holds a certificate but no private key",
            ),
            (
                check(KEY, None),
                "key `private_key`: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`); put the certificate's PEM after the key, or give it in `certificate`",
            ),
            (
                check(KEY, Some(KEY)),
                "key `certificate`: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            ),
            (
                check("s3cret", Some(CERTIFICATE)),
                "key `private_key`: holds no PEM private key",
            ),
            (
                check(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                    Some(CERTIFICATE),
                ),
                "key `private_key`: the private key is encrypted",
            ),
            (
                check(
                    KEY,
                    Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                ),
                "key `certificate`: not an X.509 certificate",
            ),
        ];
        for (outcome, expected) in cases {
            let Err(error) = outcome else {
                panic!("{expected:?} expected, the pair was accepted");
            };
            assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }
}
