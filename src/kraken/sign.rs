//! Kraken's `API-Sign`: `base64(HMAC-SHA512(base64_decode(secret), path + SHA256(nonce + body)))`.
//!
//! The signature covers the exact body bytes that are sent, so callers build the body once and pass the
//! same bytes here and to the HTTP request.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// Computes the `API-Sign` header value.
///
/// `secret` is the already base64-decoded private key; `nonce` is the decimal nonce that also appears in
/// `body`.
pub fn api_sign(secret: &[u8], path: &str, nonce: u64, body: &[u8]) -> String {
    let mut inner = Sha256::new();
    inner.update(nonce.to_string().as_bytes());
    inner.update(body);
    let digest = inner.finalize();

    let mut mac = Hmac::<Sha512>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(path.as_bytes());
    mac.update(&digest);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Decodes a base64 API secret (surrounding whitespace ignored). The error never contains the input.
pub fn decode_secret(encoded: &str) -> Result<Vec<u8>, SecretDecodeError> {
    let trimmed = encoded.trim();
    if trimmed.is_empty() {
        return Err(SecretDecodeError::Empty);
    }
    STANDARD
        .decode(trimmed)
        .map_err(|_| SecretDecodeError::NotBase64)
}

/// Why a secret could not be decoded; deliberately carries no part of the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretDecodeError {
    #[error("the API secret is empty")]
    Empty,
    #[error(
        "the API secret is not valid base64 (copy the \"Private key\" exactly as Kraken shows it)"
    )]
    NotBase64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";
    const NONCE: u64 = 1616492376594;

    fn sign(path: &str, body: &str) -> String {
        api_sign(
            &decode_secret(SECRET).unwrap(),
            path,
            NONCE,
            body.as_bytes(),
        )
    }

    #[test]
    fn official_add_order_vector() {
        assert_eq!(
            sign(
                "/0/private/AddOrder",
                "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
            ),
            "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
        );
    }

    #[test]
    fn balance_ex_form_body_vector() {
        assert_eq!(
            sign("/0/private/BalanceEx", "nonce=1616492376594"),
            "1j2wTVcCjQvueYQKkvwE3KMKUKZ2X44OnlJOYr2nPt3WwRIl69rXv3dyHxdoxHIc88DGbIR+WwRtR0qudfAL+w=="
        );
    }

    #[test]
    fn balance_ex_json_body_vector() {
        assert_eq!(
            sign("/0/private/BalanceEx", "{\"nonce\":1616492376594}"),
            "u+1al85M8drfnzzxQQnXXKGicV6emOuNAkvWBC8G8qnSYmFlHMxUVmCcnemw7QoipN0KlNH4sabMlZ5g67tP3Q=="
        );
    }

    #[test]
    fn secret_surrounding_whitespace_is_ignored() {
        let padded = format!("  {SECRET}\n");
        assert_eq!(decode_secret(&padded), decode_secret(SECRET));
    }

    #[test]
    fn bad_secrets_are_refused_without_echoing_them() {
        assert_eq!(decode_secret("  \n"), Err(SecretDecodeError::Empty));
        let err = decode_secret("not*base64!").unwrap_err();
        assert_eq!(err, SecretDecodeError::NotBase64);
        assert!(!err.to_string().contains("not*base64!"));
    }
}
