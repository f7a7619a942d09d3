//! The rustls server configuration of `tls_server_config`: certificate and key, protocol versions,
//! client certificate verification. Files are watched through [`super::reload`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::reload::{OnMissing, Reloading};
use super::RawTls;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(super) fn build_tls(raw: RawTls, base: &Path) -> Result<ServerConfig, String> {
    if raw.cipher_suites.is_some()
        || raw.curve_preferences.is_some()
        || raw.prefer_server_cipher_suites.is_some()
    {
        return Err("tls_server_config: cipher_suites, curve_preferences and prefer_server_cipher_suites are not supported (rustls chooses only modern suites); remove them".to_string());
    }
    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let cert_file = raw
        .cert_file
        .map(resolve)
        .ok_or("tls_server_config.cert_file is missing; point it at the PEM certificate (chain)")?;
    let key_file = raw
        .key_file
        .map(resolve)
        .ok_or("tls_server_config.key_file is missing; point it at the PEM private key")?;
    let versions = protocol_versions(raw.min_version.as_deref(), raw.max_version.as_deref())?;
    let provider = provider();

    let client_auth = raw.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let verifier = match client_auth {
        "NoClientCert" => WebPkiClientVerifier::no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" => {
            let ca_file = raw.client_ca_file.map(resolve).ok_or_else(|| {
                format!("tls_server_config.client_auth_type {client_auth} needs client_ca_file")
            })?;
            let optional = client_auth == "VerifyClientCertIfGiven";
            Arc::new(ReloadingClientVerifier::new(ca_file, optional, Arc::clone(&provider))?)
        }
        "RequestClientCert" | "RequireAnyClientCert" => {
            return Err(format!(
                "tls_server_config.client_auth_type {client_auth} accepts unverified client certificates and is not supported; use RequireAndVerifyClientCert or VerifyClientCertIfGiven"
            ))
        }
        other => {
            return Err(format!(
                "tls_server_config.client_auth_type {other:?} is unknown; use NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ))
        }
    };
    let resolver = ReloadingCert::new(cert_file, key_file, Arc::clone(&provider))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |key: &str, value: &str| {
        match value {
        "TLS12" => Ok(12),
        "TLS13" => Ok(13),
        "TLS10" | "TLS11" => Err(format!(
            "tls_server_config.{key} {value} is not supported (TLS 1.0 and 1.1 are obsolete); use TLS12 or TLS13"
        )),
        other => Err(format!("tls_server_config.{key} {other:?} is unknown; use TLS12 or TLS13")),
    }
    };
    let min = min
        .map(|v| rank("min_version", v))
        .transpose()?
        .unwrap_or(12);
    let max = max
        .map(|v| rank("max_version", v))
        .transpose()?
        .unwrap_or(13);
    if min > max {
        return Err("tls_server_config: min_version is above max_version".to_string());
    }
    Ok(
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(rank, _)| (min..=max).contains(rank))
            .map(|(_, version)| version)
            .collect(),
    )
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read certificate file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

fn load_certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("key file {}: {e}", key_file.display()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("key file {}: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(certs, signing_key);
    certified.keys_match().map_err(|e| {
        format!(
            "key file {} does not match certificate {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    Ok(certified)
}

/// A verifier of client certificates against the CAs in `ca_file`.
fn client_verifier(
    ca_file: &Path,
    optional: bool,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca_file)? {
        roots
            .add(cert)
            .map_err(|e| format!("client_ca_file {}: {e}", ca_file.display()))?;
    }
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider));
    let builder = if optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| format!("client_ca_file {}: {e}", ca_file.display()))
}

/// Verifies client certificates against `client_ca_file`, re-read when the file changes.
///
/// It sends no CA hints to clients (the CAs may change under it); clients then offer the certificate
/// they have, which is what Prometheus and curl do anyway. When the CA file is deleted, every client
/// certificate is refused until a readable one is back: trust is not kept for a CA the operator removed.
#[derive(Debug)]
struct ReloadingClientVerifier {
    optional: bool,
    /// Verifies as the CA file last read said; the schemes stay those of the first load.
    verifier: Reloading<Arc<dyn ClientCertVerifier>>,
    schemes: Vec<SignatureScheme>,
}

impl ReloadingClientVerifier {
    fn new(
        ca_file: PathBuf,
        optional: bool,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let load_file = ca_file.clone();
        let verifier = Reloading::new(
            "client CA file",
            vec![ca_file],
            OnMissing::Forget,
            Box::new(move || client_verifier(&load_file, optional, &provider)),
        )?;
        let schemes = verifier
            .current()
            .map(|v| v.supported_verify_schemes())
            .unwrap_or_default();
        Ok(Self {
            optional,
            verifier,
            schemes,
        })
    }

    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        self.verifier.current().ok_or_else(|| {
            rustls::Error::General("the client CA file is missing; no client is trusted".into())
        })
    }
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.optional
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// Serves the certificate and key from their files, reloading them when either file changes; while
/// the new pair cannot be loaded (mid-rotation, or a mistake), the previous one is served.
#[derive(Debug)]
struct ReloadingCert {
    key: Reloading<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    fn new(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let files = vec![cert_file.clone(), key_file.clone()];
        let key = Reloading::new(
            "TLS certificate and key",
            files,
            OnMissing::Keep,
            Box::new(move || load_certified_key(&cert_file, &key_file, &provider).map(Arc::new)),
        )?;
        Ok(Self { key })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.key.current()
    }
}
