//! The Kraken Futures REST client (`https://futures.kraken.com/derivatives/api/v3/...`): another host,
//! other keys and another signature than the spot API ([`sign`]), and another answer envelope
//! (`{"result": "success", ...}` or `{"result": "error", "error": "authenticationError"}`).
//!
//! One [`FuturesClient`] per futures key. Its nonce is its own sequence (milliseconds, strictly
//! increasing, the spot [`NonceSequence`] type), taken, signed, sent and answered under one lock, so
//! one request per key is in flight. The guards are the spot client's: no redirects, the answer
//! capped at [`MAX_RESPONSE_BYTES`](super::client::MAX_RESPONSE_BYTES), the request timeout, and the
//! key and signature scrubbed from any text an upstream echoes.

pub mod accounts;
pub mod key_check;
pub mod sign;

use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::client::{exchange, sensitive_headers, ApiUrl, NonceSequence};
use super::error::{ErrorReason, PollError};

pub use accounts::{FlexCurrency, FlexWallet, FuturesAccounts, MarginWallet};

/// The default `futures_api_url`.
pub const DEFAULT_FUTURES_API_URL: &str = "https://futures.kraken.com";

/// The client of one Kraken Futures key.
pub struct FuturesClient {
    http: reqwest::Client,
    api_url: ApiUrl,
    api_key: SecretString,
    secret: SecretSlice<u8>,
    nonce: NonceSequence,
}

impl std::fmt::Debug for FuturesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuturesClient")
            .field("api_url", &self.api_url.as_str())
            .field("api_key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl FuturesClient {
    /// `api_url` without the path (`https://futures.kraken.com`); `secret` already base64-decoded;
    /// `nonce` the key's sequence (kept across reloads).
    pub fn new(
        http: reqwest::Client,
        api_url: &str,
        api_key: SecretString,
        secret: SecretSlice<u8>,
        nonce: NonceSequence,
    ) -> Self {
        Self {
            http,
            api_url: ApiUrl::new(api_url),
            api_key,
            secret,
            nonce,
        }
    }

    /// One signed `GET` of `path` (with its `/derivatives` prefix, no query), decoded by `decode`.
    pub(crate) async fn get<T>(
        &self,
        path: &str,
        decode: impl FnOnce(&[u8]) -> Result<T, PollError>,
    ) -> Result<T, PollError> {
        let url = self.api_url.with_path(path)?;
        let mut nonce_counter = self.nonce.lock().await;
        let nonce = nonce_counter.next_now().to_string();
        let signature = sign::authent(self.secret.expose_secret(), path, &nonce, "");
        let secrets = [SecretString::from(signature.clone()), self.api_key.clone()];
        let (api_key, authent) = sensitive_headers(&self.api_key, &signature, "futures API key")?;
        let request = self
            .http
            .get(url.clone())
            .header("APIKey", api_key)
            .header("Authent", authent)
            .header("Nonce", &nonce);
        exchange(request, url.as_str(), nonce_counter, &secrets, decode).await
    }
}

/// Kraken Futures' refusal in an answer, if it is one: an error code (`{"result":"error","error":
/// "authenticationError"}`, when `answered` says the answer has nothing else) or HTTP 401's
/// `{"status":"unauthorized","reason":...}`. One reading for every futures endpoint.
pub(crate) fn refusal(
    error: Option<&str>,
    answered: bool,
    status: Option<&str>,
    reason: Option<&str>,
) -> Option<PollError> {
    if let Some(code) = error.filter(|_| !answered) {
        return Some(PollError::new(
            reason_of(code),
            format!("Kraken Futures answered {}", super::client::printable(code)),
        ));
    }
    (status == Some("unauthorized")).then(|| {
        PollError::new(
            ErrorReason::InvalidKey,
            format!(
                "Kraken Futures answered unauthorized: {}",
                super::client::printable(reason.unwrap_or("no reason given"))
            ),
        )
    })
}

/// Classifies a Kraken Futures error code (`authenticationError`) into the exporter's reasons.
pub fn reason_of(code: &str) -> ErrorReason {
    match code.trim() {
        "authenticationError" | "unauthorized" | "apiKeyNotFound" => ErrorReason::InvalidKey,
        "apiLimitExceeded" => ErrorReason::RateLimited,
        "nonceBelowThreshold" | "nonceDuplicate" => ErrorReason::InvalidNonce,
        "invalidSignature" => ErrorReason::InvalidSignature,
        "insufficientPermissions" | "permissionDenied" => ErrorReason::PermissionDenied,
        "serviceUnavailable" | "Server under maintenance" => ErrorReason::Unavailable,
        _ => ErrorReason::ApiError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futures_error_codes_map_to_the_existing_reasons() {
        let cases = [
            ("authenticationError", ErrorReason::InvalidKey),
            ("apiLimitExceeded", ErrorReason::RateLimited),
            ("nonceBelowThreshold", ErrorReason::InvalidNonce),
            ("nonceDuplicate", ErrorReason::InvalidNonce),
            ("accountInactive", ErrorReason::ApiError),
            ("invalidArgument", ErrorReason::ApiError),
        ];
        for (code, reason) in cases {
            assert_eq!(reason_of(code), reason, "{code}");
        }
    }
}
