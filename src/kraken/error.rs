//! Why a poll failed: a closed set of reasons, each with the hint an operator needs.
//!
//! The reason is the `reason` label of `kraken_poll_errors_total`, so the set is small and fixed; the
//! Kraken error text itself goes to the log line, never into a label.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The closed set of poll failure reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// No complete answer within `request_timeout`.
    Timeout,
    /// Connection, DNS or TLS failure, or an HTTP status other than 200.
    Http,
    /// HTTP 200 but not the JSON envelope (a CDN page, truncated JSON, a field that is not a decimal).
    Decode,
    InvalidKey,
    InvalidSignature,
    InvalidNonce,
    PermissionDenied,
    /// `EAPI:Rate limit exceeded` or `EService: Throttled`.
    RateLimited,
    /// `EGeneral:Temporary lockout`.
    Lockout,
    /// `EService:Unavailable` or `EService:Busy`.
    Unavailable,
    /// Any other Kraken error string.
    ApiError,
    /// `EGeneral:Unknown method` or `EAPI:Feature disabled`: the account or region does not have the
    /// endpoint. Not an outage: an endpoint other than the balances is then shown as not offered.
    NotOffered,
}

impl ErrorReason {
    /// Every reason, in the order they are documented.
    pub const ALL: [ErrorReason; 12] = [
        Self::Timeout,
        Self::Http,
        Self::Decode,
        Self::InvalidKey,
        Self::InvalidSignature,
        Self::InvalidNonce,
        Self::PermissionDenied,
        Self::RateLimited,
        Self::Lockout,
        Self::Unavailable,
        Self::ApiError,
        Self::NotOffered,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Http => "http",
            Self::Decode => "decode",
            Self::InvalidKey => "invalid_key",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidNonce => "invalid_nonce",
            Self::PermissionDenied => "permission_denied",
            Self::RateLimited => "rate_limited",
            Self::Lockout => "lockout",
            Self::Unavailable => "unavailable",
            Self::ApiError => "api_error",
            Self::NotOffered => "not_offered",
        }
    }

    /// What the operator can do about it.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Timeout => "Kraken or the network is slow; check connectivity or raise request_timeout",
            Self::Http => "check network access to api_url (DNS, firewall, proxy) and Kraken's status page",
            Self::Decode => "Kraken or a proxy answered with something other than the API's JSON; usually a CDN error page, retried automatically",
            Self::InvalidKey => "the API key is wrong or was deleted (create a query-only key and update api_key), or api_otp_file is set for a key without a 2FA password",
            Self::InvalidSignature => "the key has a 2FA password and api_otp_file is missing or wrong, or the API secret does not belong to this key (copy the private key again into api_secret_file)",
            Self::InvalidNonce => "the key is used by another client or exporter instance, or was once used with a larger nonce unit; give this exporter its own key or raise the key's nonce window",
            Self::PermissionDenied => "the key lacks the \"Funds permissions - Query\" permission; edit the key on Kraken",
            Self::RateLimited => "the key's call counter is exhausted, often by another client sharing the key; raise poll_interval or use a dedicated key",
            Self::Lockout => "Kraken locked the key after repeated bad nonces or signatures (about 15 minutes); fix the cause and wait",
            Self::Unavailable => "Kraken is in maintenance or overloaded; retried automatically",
            Self::ApiError => "unexpected Kraken error; see the error text",
            Self::NotOffered => "Kraken does not offer this endpoint to this account or region; nothing to do (it is asked again now and then)",
        }
    }

    /// Classifies one Kraken error string (`EAPI:Invalid nonce`).
    pub fn from_kraken_error(text: &str) -> Self {
        let text = text.trim();
        match text {
            "EAPI:Invalid key" => Self::InvalidKey,
            "EAPI:Invalid signature" => Self::InvalidSignature,
            "EAPI:Invalid nonce" => Self::InvalidNonce,
            "EGeneral:Permission denied" => Self::PermissionDenied,
            "EAPI:Rate limit exceeded" => Self::RateLimited,
            "EGeneral:Temporary lockout" => Self::Lockout,
            "EService:Unavailable" | "EService:Busy" => Self::Unavailable,
            "EGeneral:Unknown method" | "EAPI:Feature disabled" => Self::NotOffered,
            _ if throttled_until(text).is_some() || text.starts_with("EService:Throttled") => {
                Self::RateLimited
            }
            _ => Self::ApiError,
        }
    }
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The time named by `EService: Throttled: <unix ts>`, if the text is that error.
pub fn throttled_until(text: &str) -> Option<SystemTime> {
    let rest = text.trim().strip_prefix("EService:")?.trim_start();
    let ts = rest.strip_prefix("Throttled:")?.trim();
    let seconds: f64 = ts.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    UNIX_EPOCH.checked_add(Duration::from_secs_f64(seconds))
}

/// A failed poll: the reason label plus a one-line description for the log.
///
/// The message holds Kraken's error text or the transport error, never request headers or secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct PollError {
    pub reason: ErrorReason,
    pub message: String,
    /// For `EService: Throttled: <ts>`: when Kraken says to come back.
    pub retry_at: Option<SystemTime>,
}

impl PollError {
    pub fn new(reason: ErrorReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            retry_at: None,
        }
    }

    /// From the `error` array of a Kraken envelope; the first error decides the reason.
    pub fn from_kraken_errors(errors: &[String]) -> Self {
        let first = errors.first().map(String::as_str).unwrap_or_default();
        Self {
            reason: ErrorReason::from_kraken_error(first),
            message: format!("Kraken answered {}", errors.join(", ")),
            retry_at: throttled_until(first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kraken_error_strings_map_to_their_reasons() {
        let cases = [
            ("EAPI:Invalid key", ErrorReason::InvalidKey),
            ("EAPI:Invalid signature", ErrorReason::InvalidSignature),
            ("EAPI:Invalid nonce", ErrorReason::InvalidNonce),
            ("EGeneral:Permission denied", ErrorReason::PermissionDenied),
            ("EAPI:Rate limit exceeded", ErrorReason::RateLimited),
            ("EService: Throttled: 1700000000", ErrorReason::RateLimited),
            ("EGeneral:Temporary lockout", ErrorReason::Lockout),
            ("EService:Unavailable", ErrorReason::Unavailable),
            ("EService:Busy", ErrorReason::Unavailable),
            ("EGeneral:Internal error", ErrorReason::ApiError),
            ("EGeneral:Invalid arguments", ErrorReason::ApiError),
        ];
        for (text, reason) in cases {
            assert_eq!(ErrorReason::from_kraken_error(text), reason, "{text}");
        }
    }

    #[test]
    fn throttled_error_carries_the_retry_time() {
        let err = PollError::from_kraken_errors(&["EService: Throttled: 1700000123".to_string()]);
        assert_eq!(err.reason, ErrorReason::RateLimited);
        assert_eq!(
            err.retry_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_123))
        );
        assert!(err.message.contains("Throttled"));
    }

    #[test]
    fn reason_labels_are_distinct_snake_case() {
        let labels: std::collections::HashSet<_> =
            ErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), ErrorReason::ALL.len());
        assert!(labels
            .iter()
            .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }
}
