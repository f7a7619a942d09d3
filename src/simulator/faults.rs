//! The failures the simulator can be told to produce: Kraken's error strings, and what a CDN, a proxy
//! or a broken network in front of Kraken does.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// How the simulator misbehaves, until told otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 with an HTML body, as a CDN in front of a down origin answers.
    ServerErrorHtml,
    /// HTTP 200 with a CDN HTML page instead of JSON.
    CdnPage,
    /// Accept the request and never answer.
    Hang,
    /// HTTP 200 with JSON cut off mid-way.
    TruncatedJson,
    /// HTTP 200 with valid JSON that is not Kraken's envelope.
    NotEnvelope,
    /// The Kraken error string in the envelope, after the request passed authentication.
    KrakenError(String),
    /// HTTP 307 to this `Location`, as a hijacked DNS name or a misconfigured proxy might answer.
    Redirect(String),
    /// HTTP 200 with a JSON-looking body that never ends (no `Content-Length`).
    EndlessBody,
    /// HTTP 200 announcing a `Content-Length` of 1 GiB.
    HugeContentLength,
    /// A proxy that echoes the request (body, `API-Key`, `API-Sign`) in an HTTP 502 page.
    EchoRequestPage,
    /// An upstream that echoes the request body in Kraken's error array.
    EchoRequestError,
}

/// The answer of a fault that echoes the request, if `fault` is one.
pub(super) fn echo_fault(
    fault: Option<&Fault>,
    body: &[u8],
    api_key: &str,
    api_sign: &str,
) -> Option<Response> {
    let body = String::from_utf8_lossy(body);
    match fault? {
        Fault::EchoRequestPage => Some(
            (
                StatusCode::BAD_GATEWAY,
                [("content-type", "text/html")],
                format!("<pre>{body} API-Key: {api_key} API-Sign: {api_sign}</pre><p>502 Bad Gateway</p>"),
            )
                .into_response(),
        ),
        Fault::EchoRequestError => Some(super::kraken_error(&format!(
            "EGeneral:Invalid arguments:{body}"
        ))),
        _ => None,
    }
}

/// The answer of a fault that sits in front of the API (CDN, network), if `fault` is one.
pub(super) async fn cdn_fault(fault: Option<&Fault>) -> Option<Response> {
    let response = match fault? {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Fault::ServerErrorHtml => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/html")],
            "<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        )
            .into_response(),
        Fault::CdnPage => (
            StatusCode::OK,
            [("content-type", "text/html")],
            "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>",
        )
            .into_response(),
        Fault::TruncatedJson => {
            (StatusCode::OK, r#"{"error":[],"result":{"ZUSD":{"balance":"25"#).into_response()
        }
        Fault::NotEnvelope => (StatusCode::OK, r#"{"message":"ok","data":[1,2,3]}"#).into_response(),
        Fault::Redirect(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", location.as_str())],
            "",
        )
            .into_response(),
        Fault::EndlessBody => (
            StatusCode::OK,
            [("content-type", "application/json")],
            axum::body::Body::new(EndlessBody { sent: 0 }),
        )
            .into_response(),
        Fault::HugeContentLength => (
            StatusCode::OK,
            [
                ("content-type", "application/json"),
                ("content-length", "1073741824"),
            ],
            axum::body::Body::new(EndlessBody { sent: 0 }),
        )
            .into_response(),
        Fault::KrakenError(_) | Fault::EchoRequestPage | Fault::EchoRequestError => return None,
    };
    Some(response)
}

/// A body of `{"error":[],"result":{"A0":{...},...` that never closes, 64 KiB per frame.
struct EndlessBody {
    sent: u64,
}

impl http_body::Body for EndlessBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let mut chunk = String::with_capacity(64 * 1024 + 64);
        if self.sent == 0 {
            chunk.push_str(r#"{"error":[],"result":{"#);
        }
        while chunk.len() < 64 * 1024 {
            self.sent += 1;
            chunk.push_str(&format!(
                r#""A{}":{{"balance":"1.0","hold_trade":"0"}},"#,
                self.sent
            ));
        }
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(chunk)))))
    }
}
