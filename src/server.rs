//! The HTTP side: `/metrics`, `/health`, `/ready` and a landing page. It only reads what the pollers
//! published; it never calls Kraken.
//!
//! Every response carries the configured security headers. Requests with a body are refused (413), each
//! request must finish within [`REQUEST_TIMEOUT`], and with `basic_auth_users` configured every path but
//! `/health` and `/ready` needs credentials: probes carry none, and neither path shows balances.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::exposition::ChunkedBytes;
use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::readiness::Readiness;
use crate::web_config::{http_header, WebConfig};

/// The longest a request may take from headers read to response ready.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The router; `GET` routes also answer `HEAD`, other methods get 405 and unknown paths 404.
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>, web: &WebConfig) -> Router {
    let guard = Arc::new(Guard {
        auth: (!web.basic_auth_users.is_empty())
            .then(|| BasicAuth::new(web.basic_auth_users.clone())),
        headers: web.headers.clone(),
    });
    Router::new()
        .route("/", get(landing_page))
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(ServerState { metrics, readiness })
        .layer(middleware::from_fn_with_state(guard, guard_requests))
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
    let open_path = matches!(request.uri().path(), "/health" | "/ready");
    if let (Some(auth), false) = (&guard.auth, open_path) {
        if !auth
            .allows(request.headers().get(header::AUTHORIZATION))
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
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    }
}

/// HTTP basic authentication against bcrypt hashes.
///
/// bcrypt is deliberately slow (tens of milliseconds), so a verified `user:password` is remembered by
/// its SHA-256 (never in clear) and at most two verifications run at once: a scrape with the right
/// credentials costs a hash lookup, and a flood of wrong passwords cannot take every core.
struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
    verifications: Semaphore,
}

/// Compared against when the user is unknown, so unknown and known users take the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash("kraken_exporter", bcrypt::DEFAULT_COST).unwrap_or_default())
}

const MAX_REMEMBERED: usize = 1024;

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Self {
        Self {
            users,
            verified: Mutex::new(HashSet::new()),
            verifications: Semaphore::new(2),
        }
    }

    async fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
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
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&fingerprint)
        {
            return true;
        }
        let Ok(_permit) = self.verifications.acquire().await else {
            return false;
        };
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| dummy_hash().to_string());
        let matches =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if matches && known {
            let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if verified.len() >= MAX_REMEMBERED {
                verified.clear();
            }
            verified.insert(fingerprint);
        }
        matches && known
    }
}

fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

async fn metrics_text(State(state): State<ServerState>, headers: HeaderMap) -> Response {
    let body = state.metrics.scrape();
    if accepts_gzip(&headers) {
        (
            [
                (header::CONTENT_TYPE, CONTENT_TYPE),
                (header::CONTENT_ENCODING, "gzip"),
                (header::VARY, "Accept-Encoding"),
            ],
            axum::body::Body::new(ChunkedBytes::new(body.gzip())),
        )
            .into_response()
    } else {
        (
            [
                (header::CONTENT_TYPE, CONTENT_TYPE),
                (header::VARY, "Accept-Encoding"),
            ],
            axum::body::Body::new(ChunkedBytes::new(body.plain())),
        )
            .into_response()
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

async fn ready(State(state): State<ServerState>) -> Response {
    let waiting = state.readiness.waiting();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: no successful BalanceEx poll yet for account(s) {}\n",
                waiting.join(", ")
            ),
        )
            .into_response()
    }
}

async fn landing_page() -> Html<String> {
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Kraken Exporter</title></head>
<body>
<h1>Kraken Exporter</h1>
<p>Version {version} (revision {revision})</p>
<ul>
<li><a href="metrics">Metrics</a></li>
<li><a href="health">Health</a>: 200 while the process runs</li>
<li><a href="ready">Ready</a>: 200 once every account has been polled successfully</li>
</ul>
</body>
</html>
"#,
        version = env!("CARGO_PKG_VERSION"),
        revision = env!("BUILD_GIT_REVISION"),
    ))
}
