//! One signed `POST /0/private/BalanceEx` per call.
//!
//! The nonce is taken, the body signed, sent and answered under one lock per API key, so exactly one
//! request per account is in flight and nonces reach Kraken in the order they were issued.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use tokio::sync::Mutex;

use super::error::{ErrorReason, PollError};
use super::nonce::NonceCounter;
use super::response::{decode_balance_ex, Balances};
use super::sign::api_sign;
use super::BALANCE_EX_PATH;

/// The `rebase_multiplier` request field (rebasing tokens only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebaseMultiplier {
    Rebased,
    Base,
}

impl RebaseMultiplier {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rebased => "rebased",
            Self::Base => "base",
        }
    }
}

/// The client for one Kraken API key.
pub struct KrakenClient {
    http: reqwest::Client,
    url: String,
    api_key: SecretString,
    secret: SecretSlice<u8>,
    rebase_multiplier: Option<RebaseMultiplier>,
    nonce: Mutex<NonceCounter>,
}

impl std::fmt::Debug for KrakenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KrakenClient")
            .field("url", &self.url)
            .field("api_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// Builds the HTTP client shared by all accounts: rustls, a total request timeout, our User-Agent.
pub fn http_client(request_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("kraken_exporter/", env!("CARGO_PKG_VERSION")))
        .timeout(request_timeout)
        .connect_timeout(request_timeout)
        .build()
}

impl KrakenClient {
    /// `api_url` without the path (`https://api.kraken.com`); `secret` already base64-decoded.
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        api_key: SecretString,
        secret: SecretSlice<u8>,
        rebase_multiplier: Option<RebaseMultiplier>,
    ) -> Self {
        Self {
            http,
            url: format!("{}{}", api_url.trim_end_matches('/'), BALANCE_EX_PATH),
            api_key,
            secret,
            rebase_multiplier,
            nonce: Mutex::new(NonceCounter::default()),
        }
    }

    /// Calls `BalanceEx` once.
    pub async fn balance_ex(&self) -> Result<Balances, PollError> {
        let mut nonce_counter = self.nonce.lock().await;
        let nonce = nonce_counter.next_now();
        let body = match self.rebase_multiplier {
            None => format!("nonce={nonce}"),
            Some(rebase) => format!("nonce={nonce}&rebase_multiplier={}", rebase.as_str()),
        };
        let signature = api_sign(
            self.secret.expose_secret(),
            BALANCE_EX_PATH,
            nonce,
            body.as_bytes(),
        );
        let response = self
            .http
            .post(&self.url)
            .header("API-Key", self.api_key.expose_secret())
            .header("API-Sign", signature)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        drop(nonce_counter);

        checked(status, &self.url, &bytes, decode_balance_ex)
    }
}

/// Decodes a 200 answer; for any other status, Kraken's error if the body is an error envelope,
/// otherwise an `http` error naming the status.
pub(crate) fn checked<T>(
    status: reqwest::StatusCode,
    url: &str,
    bytes: &[u8],
    decode: impl FnOnce(&[u8]) -> Result<T, PollError>,
) -> Result<T, PollError> {
    let decoded = decode(bytes);
    if status.is_success() {
        return decoded;
    }
    match decoded {
        // A Kraken error envelope with an unusual status still says what went wrong.
        Err(err) if err.reason != ErrorReason::Decode => Err(err),
        _ => Err(PollError::new(
            ErrorReason::Http,
            format!(
                "HTTP {status} from {url}: {}",
                String::from_utf8_lossy(bytes)
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(80)
                    .collect::<String>()
            ),
        )),
    }
}

/// A transport failure as a poll error: timeouts apart, the rest (connect, DNS, TLS, reset) as `http`.
pub(crate) fn transport_error(err: reqwest::Error) -> PollError {
    let reason = if err.is_timeout() {
        ErrorReason::Timeout
    } else {
        ErrorReason::Http
    };
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    PollError::new(reason, message)
}
