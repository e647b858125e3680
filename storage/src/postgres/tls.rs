//! TLS for connections to PostgreSQL, through rustls: what each [`TlsMode`] checks of the
//! server's certificate.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::settings::{PostgresSettings, TlsMode};

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The `sslrootcert` file cannot be read or holds no certificate.
    #[error("sslrootcert {path}: {reason}")]
    RootCertificates {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The system's certificate authorities cannot be loaded.
    #[error("loading the system's certificate authorities: {0}")]
    SystemRoots(String),
    /// rustls refused the configuration.
    #[error("setting up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The connector for `settings`: every mode gets one (tokio-postgres only uses it where the
/// mode asks for TLS), and only the verifying modes load certificate authorities.
pub(super) fn connector(settings: &PostgresSettings) -> Result<MakeRustlsConnect, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match settings.tls {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => Arc::new(EncryptionOnly {
            algorithms: provider.signature_verification_algorithms,
        }),
        TlsMode::VerifyCa => Arc::new(AnyHostName(webpki_verifier(settings, &provider)?)),
        TlsMode::VerifyFull => webpki_verifier(settings, &provider)?,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn webpki_verifier(
    settings: &PostgresSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsSetupError> {
    let mut roots = RootCertStore::empty();
    match &settings.root_certificates {
        Some(path) => {
            let shown = path.display().to_string();
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|each| each.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsSetupError::RootCertificates {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(TlsSetupError::RootCertificates {
                    path: shown,
                    reason: "no usable certificate in it".to_owned(),
                });
            }
        }
        None => {
            let loaded = rustls_native_certs::load_native_certs();
            if loaded.certs.is_empty() {
                let reasons: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
                return Err(TlsSetupError::SystemRoots(reasons.join("; ")));
            }
            roots.add_parsable_certificates(loaded.certs);
        }
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| TlsSetupError::Rustls(rustls::Error::General(e.to_string())))
}

/// `prefer` and `require`: the connection is encrypted and the handshake's signatures are
/// checked against the certificate presented, but the certificate itself is not checked, as
/// libpq does in these modes. Use `verify-full` where the network is not trusted.
#[derive(Debug)]
struct EncryptionOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EncryptionOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `verify-ca`: the certificate must chain to a trusted authority, for whatever host name.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
