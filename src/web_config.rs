//! `--web.config.file`: the Prometheus exporter-toolkit web configuration, so operators reuse the file
//! they already have for node_exporter and friends.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type`, `client_ca_file`,
//! `min_version`, `max_version`), `basic_auth_users` (bcrypt hashes `$2y$`, `$2b$`, `$2a$`) and
//! `http_server_config.headers`. What rustls cannot honour (TLS 1.0/1.1, Go cipher-suite names,
//! `RequestClientCert`/`RequireAnyClientCert`, which accept unverified client certificates) is refused
//! with a message rather than silently ignored. The certificate, the key and the client CA file are
//! re-read when their files change, so rotation needs no restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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
use serde::Deserialize;

/// The parsed and checked web configuration.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// The rustls configuration when TLS is on.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name -> bcrypt hash; empty means no authentication.
    pub basic_auth_users: BTreeMap<String, String>,
    /// Extra response headers (security headers).
    pub headers: Vec<(http_header::HeaderName, http_header::HeaderValue)>,
}

/// Re-exported header types, so callers need not depend on `http` themselves.
pub mod http_header {
    pub use axum::http::{HeaderName, HeaderValue};
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<serde_yaml::Value>,
    curve_preferences: Option<serde_yaml::Value>,
    prefer_server_cipher_suites: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Security headers the exporter-toolkit allows in `http_server_config.headers`.
const ALLOWED_HEADERS: &[&str] = &[
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-XSS-Protection",
    "Content-Security-Policy",
];

/// A web configuration problem, as one line naming the key or file.
#[derive(Debug, thiserror::Error)]
#[error("--web.config.file {file}: {message}")]
pub struct WebConfigError {
    file: String,
    message: String,
}

impl WebConfig {
    /// Loads and checks the file: certificates are read and parsed now, so mistakes stop the start.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let fail = |message: String| WebConfigError {
            file: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(format!(
                "cannot read it: {e}; check the path and permissions"
            ))
        })?;
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| fail(format!("{e}")))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = raw
            .tls_server_config
            .map(|tls| build_tls(tls, base).map(Arc::new))
            .transpose()
            .map_err(fail)?;
        for (user, hash) in &raw.basic_auth_users {
            hash.parse::<bcrypt::HashParts>().map_err(|_| {
                fail(format!(
                    "basic_auth_users.{user}: not a bcrypt hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                ))
            })?;
        }
        let mut headers = Vec::new();
        if let Some(http) = raw.http_server_config {
            if http.http2 == Some(true) {
                tracing::info!("http_server_config.http2 is ignored: the exporter serves HTTP/1.1");
            }
            for (name, value) in http.headers {
                let Some(allowed) = ALLOWED_HEADERS
                    .iter()
                    .find(|h| h.eq_ignore_ascii_case(&name))
                else {
                    return Err(fail(format!(
                        "http_server_config.headers.{name} is not allowed; allowed: {}",
                        ALLOWED_HEADERS.join(", ")
                    )));
                };
                let header_value = http_header::HeaderValue::from_str(&value).map_err(|_| {
                    fail(format!(
                        "http_server_config.headers.{name}: {value:?} is not a valid header value"
                    ))
                })?;
                headers.push((
                    http_header::HeaderName::from_static(static_lowercase(allowed)),
                    header_value,
                ));
            }
        }
        Ok(Self {
            tls,
            basic_auth_users: raw.basic_auth_users,
            headers,
        })
    }
}

fn static_lowercase(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_tls(raw: RawTls, base: &Path) -> Result<ServerConfig, String> {
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

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
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
/// they have, which is what Prometheus and curl do anyway.
#[derive(Debug)]
struct ReloadingClientVerifier {
    ca_file: PathBuf,
    optional: bool,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Option<SystemTime>, Arc<dyn ClientCertVerifier>)>,
}

impl ReloadingClientVerifier {
    fn new(
        ca_file: PathBuf,
        optional: bool,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let verifier = client_verifier(&ca_file, optional, &provider)?;
        Ok(Self {
            current: Mutex::new((modified(&ca_file), verifier)),
            ca_file,
            optional,
            provider,
        })
    }

    fn current(&self) -> Arc<dyn ClientCertVerifier> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = modified(&self.ca_file);
        if stamp != current.0 {
            match client_verifier(&self.ca_file, self.optional, &self.provider) {
                Ok(verifier) => {
                    tracing::info!(client_ca_file = %self.ca_file.display(), "client CA file reloaded");
                    *current = (stamp, verifier);
                }
                Err(error) => {
                    tracing::warn!(%error, "client CA file changed but cannot be loaded; keeping the previous one")
                }
            }
        }
        Arc::clone(&current.1)
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
        self.current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().supported_verify_schemes()
    }
}

/// Serves the certificate and key from their files, reloading them when either file changes.
#[derive(Debug)]
struct ReloadingCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<(Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>)>,
}

impl ReloadingCert {
    fn new(
        cert_file: PathBuf,
        key_file: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let key = load_certified_key(&cert_file, &key_file, &provider)?;
        let stamps = (modified(&cert_file), modified(&key_file));
        Ok(Self {
            current: Mutex::new((stamps.0, stamps.1, Arc::new(key))),
            cert_file,
            key_file,
            provider,
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let stamps = (modified(&self.cert_file), modified(&self.key_file));
        if (stamps.0, stamps.1) != (current.0, current.1) {
            match load_certified_key(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
                    *current = (stamps.0, stamps.1, Arc::new(key));
                }
                // Mid-rotation the two files may not match yet: keep serving the old pair.
                Err(error) => {
                    tracing::warn!(%error, "TLS certificate changed but cannot be loaded; keeping the previous one")
                }
            }
        }
        Some(Arc::clone(&current.2))
    }
}
