//! `--web.config.file`: the Prometheus exporter-toolkit web configuration, so operators reuse the file
//! they already have for node_exporter and friends.
//!
//! Supported: `tls_server_config` (`cert_file`, `key_file`, `client_auth_type`, `client_ca_file`,
//! `min_version`, `max_version`), `basic_auth_users` (bcrypt hashes `$2y$`, `$2b$`, `$2a$`) and
//! `http_server_config.headers`. What rustls cannot honour (TLS 1.0/1.1, Go cipher-suite names,
//! `RequestClientCert`/`RequireAnyClientCert`, which accept unverified client certificates) is refused
//! with a message rather than silently ignored.
//!
//! This module parses and checks the file; `tls` builds the rustls configuration, whose certificate,
//! key and client CA file are re-read by the one file reloader in `reload` when they change, so
//! rotation needs no restart.

mod reload;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use serde::Deserialize;

use tls::build_tls;

/// The highest bcrypt cost taken for `basic_auth_users` (cost 10, a common choice, takes tens of
/// milliseconds; each step doubles it).
pub const MAX_BCRYPT_COST: u32 = 14;

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
pub(crate) struct RawTls {
    pub(super) cert_file: Option<PathBuf>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<PathBuf>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
    pub(super) cipher_suites: Option<serde_yaml::Value>,
    pub(super) curve_preferences: Option<serde_yaml::Value>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
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
        let text = crate::files::read_text_bounded(path, crate::files::MAX_CONFIG_FILE_BYTES)
            .map_err(|message| WebConfigError {
                file: path.display().to_string(),
                message,
            })?;
        Self::from_yaml(&text, path)
    }

    /// Parses and checks the text of the file at `path` (relative paths in it are relative to the
    /// file's directory).
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, WebConfigError> {
        let fail = |message: String| WebConfigError {
            file: path.display().to_string(),
            message,
        };
        let raw: RawWebConfig = if text.trim().is_empty() {
            RawWebConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| fail(format!("{e}")))?
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let tls = raw
            .tls_server_config
            .map(|tls| build_tls(tls, base).map(Arc::new))
            .transpose()
            .map_err(fail)?;
        for (user, hash) in &raw.basic_auth_users {
            let parts = hash.parse::<bcrypt::HashParts>().map_err(|_| {
                fail(format!(
                    "basic_auth_users.{user}: not a bcrypt hash; create one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                ))
            })?;
            // Each login that is not remembered yet costs one verification: a cost of 31 would
            // take days, and even 16 lets a handful of requests hold every slot for minutes.
            if parts.get_cost() > MAX_BCRYPT_COST {
                return Err(fail(format!(
                    "basic_auth_users.{user}: bcrypt cost {} is above the {MAX_BCRYPT_COST} the exporter accepts (each check would take seconds); create the hash with `htpasswd -nBC 10`",
                    parts.get_cost()
                )));
            }
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
