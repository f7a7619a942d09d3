//! The envelope every Kraken endpoint answers with (`{"error": [...], "result": ...}`), and exact
//! decimals.
//!
//! Kraken sends decimal strings (`"25435.2100"`); its documentation shows JSON numbers. Both are read
//! from the raw JSON text into `rust_decimal::Decimal` by [`parse_decimal`], so `0.1` stays `0.1` and ten
//! decimal places survive.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::{ErrorReason, PollError};

/// The longest name taken from an answer as a label (an asset key, a futures wallet or currency):
/// Kraken's codes are a few characters; a longer one is refused rather than multiplied into every
/// series, log line and page that carries it.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Deserialize)]
struct Envelope<'a> {
    error: Vec<String>,
    /// Present (even as `null`, which then fails to decode) or absent: only absence means "none".
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The `result` of a Kraken envelope, or its error, or a decode error (every endpoint answers so).
pub fn envelope_result(body: &[u8]) -> Result<&RawValue, PollError> {
    envelope_result_if_any(body)?
        .ok_or_else(|| decode_error("the answer has no error and no \"result\""))
}

/// Like [`envelope_result`], but an envelope with an empty `error` and no `result` at all
/// (`{"error":[]}`) is `None` rather than a decode error: Kraken's answer to `BalanceEx` for an
/// account that was never funded. Anything without an `error` array is still not the envelope.
pub fn envelope_result_if_any(body: &[u8]) -> Result<Option<&RawValue>, PollError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|err| not_the_envelope(body, &err))?;
    if !envelope.error.is_empty() {
        return Err(PollError::from_kraken_errors(&envelope.error));
    }
    Ok(envelope.result)
}

/// Parses the JSON text of a decimal string or number exactly.
pub fn parse_decimal(json: &str) -> Result<Decimal, String> {
    let json = json.trim();
    let owned;
    let text = match json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        // The usual case, a plain string like "25435.2100": read in place.
        Some(inner) if !inner.contains('\\') => inner.trim(),
        _ if json.starts_with('"') => {
            owned = serde_json::from_str::<String>(json).map_err(|e| e.to_string())?;
            owned.trim()
        }
        _ => json,
    };
    if text.is_empty() || text == "null" || text == "true" || text == "false" {
        return Err(format!("expected a decimal, got {}", shorten(json)));
    }
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    };
    parsed.map_err(|e| format!("{} is not a decimal Kraken could send ({e})", shorten(json)))
}

pub(crate) fn decode_error(message: impl Into<String>) -> PollError {
    PollError::new(ErrorReason::Decode, message)
}

fn not_the_envelope(body: &[u8], err: &serde_json::Error) -> PollError {
    let text = String::from_utf8_lossy(body);
    let looks_like_html = text.trim_start().starts_with('<');
    if looks_like_html {
        decode_error(format!(
            "expected Kraken's JSON envelope, got an HTML page ({} bytes): {}",
            body.len(),
            shorten(&text)
        ))
    } else {
        decode_error(format!(
            "expected Kraken's JSON envelope ({err}), got {} bytes: {}",
            body.len(),
            shorten(&text)
        ))
    }
}

/// The first 80 characters on one line, for log messages about unexpected bodies.
fn shorten(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    if text.chars().count() > 80 {
        format!("{one_line}...")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_read_exactly_from_strings_and_numbers() {
        assert_eq!(
            parse_decimal("\"25435.2100\"").unwrap().to_string(),
            "25435.2100"
        );
        assert_eq!(
            parse_decimal("0.1").unwrap(),
            Decimal::from_str("0.1").unwrap()
        );
        assert_eq!(
            parse_decimal("1e-10").unwrap(),
            Decimal::from_str("0.0000000001").unwrap()
        );
        for bad in ["null", "true", "\"\"", "\"abc\""] {
            assert!(parse_decimal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kraken_errors_and_foreign_bodies_are_told_apart() {
        let err = envelope_result(br#"{"error":["EAPI:Invalid nonce"]}"#).unwrap_err();
        assert_eq!(err.reason, ErrorReason::InvalidNonce);
        let err = envelope_result(b"<html>520</html>").unwrap_err();
        assert_eq!(err.reason, ErrorReason::Decode);
        assert!(err.message.contains("HTML"), "{err}");
    }
}
