//! The HTTP side: the metrics (`--web.telemetry-path`), `/health`, `/ready`, `/-/reload` and a landing
//! page. It only reads what the pollers published, and hands reload requests to the application; it
//! never calls Kraken.
//!
//! Every response carries the configured security headers. Requests with a body are refused (413), each
//! request must finish within [`REQUEST_TIMEOUT`] (the wait for a bcrypt slot included), and with
//! `basic_auth_users` configured every path but `/health` and `/ready` needs credentials: probes carry
//! none, and neither path shows balances.
//!
//! These guards are one middleware, not a stack of tower-http layers (timeout, body limit, response
//! headers): authentication has to sit inside the timeout, and one future per request is what the
//! scrape benchmarks measured; tower-http would replace about forty lines, so it was left out.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::exposition::ChunkedBytes;
use crate::http::readiness::Readiness;
use crate::http::status::Status;
use crate::http::web_config::{http_header, WebConfig};
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::polling::reload::{ReloadHandle, ReloadOutcome};

/// The longest a request may take from headers read to response ready.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    telemetry_path: Arc<str>,
    reloads: Option<ReloadHandle>,
    status: Option<Arc<Status>>,
}

/// The configurable routes: where the metrics are, and where reload requests go when the lifecycle
/// API is on.
#[derive(Debug, Clone)]
pub struct Routes {
    /// `--web.telemetry-path`, `/metrics` by default.
    pub telemetry_path: String,
    /// `Some` with `--web.enable-lifecycle`: `POST`/`PUT /-/reload` reload the configuration.
    pub reloads: Option<ReloadHandle>,
    /// What the landing page shows of each account, when set.
    pub status: Option<Arc<Status>>,
}

impl Default for Routes {
    fn default() -> Self {
        Self {
            telemetry_path: DEFAULT_TELEMETRY_PATH.to_string(),
            reloads: None,
            status: None,
        }
    }
}

/// Where the metrics are unless `--web.telemetry-path` says otherwise.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";

/// The paths the exporter serves itself; `--web.telemetry-path` must be another one.
pub const RESERVED_PATHS: &[&str] = &["/", "/health", "/ready", "/-/reload"];

/// Checks a `--web.telemetry-path`: it starts with `/` and is none of [`RESERVED_PATHS`].
pub fn check_telemetry_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.contains(char::is_whitespace) || path.contains(['?', '#']) {
        return Err(format!(
            "--web.telemetry-path {path:?} must be a path starting with / (e.g. /metrics)"
        ));
    }
    if RESERVED_PATHS.contains(&path) {
        return Err(format!(
            "--web.telemetry-path {path:?} is taken by the exporter itself; pick another path (e.g. /metrics)"
        ));
    }
    Ok(())
}

/// The router; `GET` routes also answer `HEAD`, other methods get 405 and unknown paths 404.
pub fn router(
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    web: &WebConfig,
    routes: &Routes,
) -> Router {
    let guard = Arc::new(Guard {
        auth: (!web.basic_auth_users.is_empty())
            .then(|| BasicAuth::new(web.basic_auth_users.clone())),
        headers: web.headers.clone(),
    });
    Router::new()
        .route("/", get(landing_page))
        .route(&routes.telemetry_path, get(metrics_text))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .with_state(ServerState {
            metrics,
            readiness,
            telemetry_path: routes.telemetry_path.as_str().into(),
            reloads: routes.reloads.clone(),
            status: routes.status.clone(),
        })
        .layer(middleware::from_fn_with_state(guard, guard_requests))
}

/// Reloads the configuration and answers 200, or 500 with the problem; 403 without the lifecycle API
/// (as Prometheus answers), and 403 for what a browser sends on another site's behalf.
async fn reload(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let Some(reloads) = state.reloads else {
        return (
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled; start with --web.enable-lifecycle to reload over HTTP (SIGHUP always works)\n",
        )
            .into_response();
    };
    if let Some(why) = cross_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            format!("reload refused: {why}; reload with curl -X POST (no Origin) or SIGHUP\n"),
        )
            .into_response();
    }
    match reloads.reload().await {
        ReloadOutcome::Reloaded => (StatusCode::OK, "configuration reloaded\n").into_response(),
        ReloadOutcome::Failed(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("configuration not reloaded: {error}\n"),
        )
            .into_response(),
        ReloadOutcome::ShuttingDown => {
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
        }
    }
}

/// Why a request looks sent by a browser on another site's behalf, if it does. Browsers mark
/// cross-site requests (`Sec-Fetch-Site`) and send the page's `Origin` with every POST; a form from
/// any page can POST without a preflight only as one of the "simple" content types. A client such as
/// curl sends none of these.
///
/// A browser's request is also refused when its `Host` is a name other than `localhost`: a page on
/// `rebind.evil.example` whose name is made to resolve to this server (DNS rebinding) sends `Host`
/// and `Origin` that agree with each other, and only the name gives it away.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("?"));
    let from_browser = headers.contains_key(header::ORIGIN)
        || headers
            .keys()
            .any(|name| name.as_str().starts_with("sec-fetch-"));
    if from_browser {
        let host = text(header::HOST.as_str()).unwrap_or_default();
        if !is_address_or_localhost(host) {
            return Some(format!(
                "a browser's request for the host name {host:?} (reached by address or localhost only, so a rebound DNS name cannot reload)"
            ));
        }
    }
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some(format!("Sec-Fetch-Site is {site:?}"));
        }
    }
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        let host = text(header::HOST.as_str()).unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
        if origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Some(format!("Origin {origin:?} is not this server ({host:?})"));
        }
    }
    if let Some(kind) = text(header::CONTENT_TYPE.as_str()) {
        let kind = kind
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if matches!(
            kind.as_str(),
            "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
        ) {
            return Some(format!("a form ({kind}) is not a reload request"));
        }
    }
    None
}

/// Whether a `Host` header (with or without its port) names an IP address or `localhost`.
fn is_address_or_localhost(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:9877`
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

struct Guard {
    auth: Option<BasicAuth>,
    headers: Vec<(http_header::HeaderName, http_header::HeaderValue)>,
}

async fn guard_requests(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let mut response = check_and_run(&guard, request, next).await;
    for (name, value) in &guard.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn check_and_run(guard: &Guard, request: Request, next: Next) -> Response {
    let has_body = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|len| len.as_bytes() != b"0")
        || request.headers().contains_key(header::TRANSFER_ENCODING);
    if has_body {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request bodies are not accepted\n",
        )
            .into_response();
    }
    // The timeout covers the wait for a bcrypt slot too, so a flood of wrong passwords cannot hold
    // requests beyond it.
    let run = async {
        let open_path = matches!(request.uri().path(), "/health" | "/ready");
        if let (Some(auth), false) = (&guard.auth, open_path) {
            let client = request
                .extensions()
                .get::<crate::http::listener::ClientAddress>()
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |client| client.0);
            if !auth
                .allows(request.headers().get(header::AUTHORIZATION), client)
                .await
            {
                return (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"kraken_exporter\"")],
                    "unauthorized\n",
                )
                    .into_response();
            }
        }
        next.run(request).await
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, run).await {
        Ok(response) => response,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    }
}

/// HTTP basic authentication against bcrypt hashes.
///
/// bcrypt is deliberately slow (tens of milliseconds), so a verified `user:password` is remembered by
/// its SHA-256 (never in clear), in a cache that evicts its oldest entry when full; at most
/// [`BCRYPT_SLOTS`] verifications run at once, so a flood of wrong passwords cannot take every core,
/// and they are shared between client addresses in turn ([`crate::http::fair_slots::FairSlots`]), so a flood from some
/// addresses cannot keep Prometheus' first login waiting behind it.
/// An unknown user is checked against a dummy hash of the same cost as the configured ones, built at
/// start, so the time of an answer does not tell which user names exist. Passwords longer than
/// bcrypt's 72 bytes are refused rather than truncated, so suffixes cannot pass for the password.
struct BasicAuth {
    users: BTreeMap<String, String>,
    dummy_hash: String,
    verified: Mutex<Remembered>,
    verifications: crate::http::fair_slots::FairSlots,
}

/// How many bcrypt verifications may run at once.
const BCRYPT_SLOTS: usize = 2;

/// How many verified credentials are remembered.
const MAX_REMEMBERED: usize = 1024;

/// Fingerprints of verified credentials, oldest first.
#[derive(Default)]
struct Remembered {
    order: VecDeque<[u8; 32]>,
    set: HashSet<[u8; 32]>,
}

impl Remembered {
    fn contains(&self, fingerprint: &[u8; 32]) -> bool {
        self.set.contains(fingerprint)
    }

    fn insert(&mut self, fingerprint: [u8; 32]) {
        if !self.set.insert(fingerprint) {
            return;
        }
        self.order.push_back(fingerprint);
        while self.order.len() > MAX_REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }
}

/// A bcrypt hash of a random password with the cost of the configured hashes (the highest, if they
/// differ), so that checking an unknown user costs what checking a known one does.
fn dummy_hash_like(users: &BTreeMap<String, String>) -> String {
    let cost = users
        .values()
        .filter_map(|hash| hash.split('$').nth(2)?.parse::<u32>().ok())
        .max()
        .unwrap_or(bcrypt::DEFAULT_COST);
    let password: [u8; 16] = Sha256::digest(format!("{:?}", std::time::SystemTime::now()))[..16]
        .try_into()
        .expect("a SHA-256 digest has 32 bytes");
    bcrypt::hash(password, cost).unwrap_or_default()
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            dummy_hash: dummy_hash_like(&users),
            users,
            verified: Mutex::new(Remembered::default()),
            verifications: crate::http::fair_slots::FairSlots::new(BCRYPT_SLOTS),
        }
    }

    async fn allows(&self, authorization: Option<&HeaderValue>, client: std::net::IpAddr) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let hash = self.users.get(&user).cloned();
        let fingerprint: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_deref().unwrap_or_default().as_bytes())
            .finalize()
            .into();
        if crate::sync::lock(&self.verified).contains(&fingerprint) {
            return true;
        }
        let _slot = self.verifications.acquire(client).await;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = tokio::task::spawn_blocking(move || {
            bcrypt::non_truncating_verify(password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if matches && known {
            crate::sync::lock(&self.verified).insert(fingerprint);
        }
        matches && known
    }
}

/// `Basic <base64 user:password>`; the scheme name is case-insensitive (RFC 7617).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let (scheme, encoded) = value.to_str().ok()?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

async fn metrics_text(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let body = state.metrics.scrape();
    negotiated(
        &headers,
        CONTENT_TYPE,
        || Some(axum::body::Body::new(ChunkedBytes::new(body.gzip()))),
        || axum::body::Body::new(ChunkedBytes::new(body.plain())),
    )
}

/// A body of `content_type` in the encoding the client accepts: `gzip()`'s, with
/// `Content-Encoding: gzip`, when the client accepts gzip and there is one, else `plain()`'s;
/// `Vary: Accept-Encoding` either way. One negotiation for `/metrics` and the landing page.
fn negotiated(
    headers: &HeaderMap,
    content_type: &'static str,
    gzip: impl FnOnce() -> Option<axum::body::Body>,
    plain: impl FnOnce() -> axum::body::Body,
) -> Response {
    let content_type = (header::CONTENT_TYPE, content_type);
    let vary = (header::VARY, "Accept-Encoding");
    match accepts_gzip(headers).then(gzip).flatten() {
        Some(compressed) => (
            [content_type, (header::CONTENT_ENCODING, "gzip"), vary],
            compressed,
        )
            .into_response(),
        None => ([content_type, vary], plain()).into_response(),
    }
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

async fn health() -> &'static str {
    "OK\n"
}

/// 200 once every account has been polled successfully. The answer counts the accounts still waiting
/// without naming them: `/ready` needs no credentials, and account names are the operator's business
/// (the log names them).
async fn ready(State(state): State<ServerState>) -> Response {
    let waiting = state.readiness.waiting();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {} account(s) without a successful balance poll yet\n",
                waiting.len()
            ),
        )
            .into_response()
    }
}

/// How often the status page reloads itself in the browser.
pub const STATUS_REFRESH_SECONDS: u64 = 10;

/// The landing page, gzipped for a browser that accepts it.
async fn landing_page(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let metrics_link = state.telemetry_path.trim_start_matches('/').to_string();
    let head = landing_head(&metrics_link);
    let Some(status) = state.status.as_ref() else {
        return Html(head + LANDING_TAIL).into_response();
    };
    let page = status.page(head, LANDING_TAIL).await;
    // An empty page (its render failed) is sent as it is: an empty body is no gzip member.
    negotiated(
        &headers,
        "text/html; charset=utf-8",
        || (!page.is_empty()).then(|| page.gzip().into()),
        || page.plain().clone().into(),
    )
}

/// What ends the landing page, after the status tables.
const LANDING_TAIL: &str = "</body>\n</html>\n";

/// The landing page up to the status tables.
fn landing_head(metrics_link: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh}"><title>Kraken Exporter</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
tr.down td.state {{ background: #f8d0d0; font-weight: bold; }}
tr.up td.state {{ background: #d4f0d4; }}
tr.waiting td.state {{ background: #f0ecd0; }}
tr.down td.hint {{ background: #fdf3e0; }}
tr.below td {{ background: #f8d0d0; }}
tr.below td.figure {{ font-weight: bold; color: #a00000; }}
tr.above td.figure {{ background: #d4f0d4; }}
</style></head>
<body>
<h1>Kraken Exporter</h1>
<p>Version {version} (revision {revision})</p>
<ul>
<li><a href="{metrics_link}">Metrics</a></li>
<li><a href="health">Health</a>: 200 while the process runs</li>
<li><a href="ready">Ready</a>: 200 once every account has been polled successfully</li>
</ul>
"#,
        refresh = STATUS_REFRESH_SECONDS,
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("BUILD_GIT_REVISION"),
    )
}
