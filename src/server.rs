//! The HTTP side: `/metrics`, `/health`, `/ready` and a landing page. It only reads what the pollers
//! published; it never calls Kraken.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::{Metrics, CONTENT_TYPE};
use crate::readiness::Readiness;

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The router; `GET` routes also answer `HEAD`, other methods get 405 and unknown paths 404.
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/", get(landing_page))
        .route("/metrics", get(metrics_text))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(ServerState { metrics, readiness })
}

async fn metrics_text(State(state): State<ServerState>) -> Response {
    let parts = state.metrics.scrape();
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in &parts {
        body.extend_from_slice(part);
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
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
