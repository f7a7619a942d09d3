//! The file's shape, as serde reads it: every key optional here, so that validation can say which one
//! is missing; unknown keys refused.

use std::path::PathBuf;

use serde::Deserialize;

use super::Options;

/// With the endpoints' options flattened in, serde cannot refuse unknown keys itself: a key no
/// endpoint owns is refused when the options are checked (`options::check`).
#[derive(Deserialize)]
pub(super) struct RawSettings {
    pub(super) api_url: Option<String>,
    pub(super) poll_interval: Option<String>,
    pub(super) request_timeout: Option<String>,
    pub(super) rebase_multiplier: Option<String>,
    pub(super) max_backoff: Option<String>,
    pub(super) stale_after: Option<String>,
    pub(super) quote_currencies: Option<Vec<String>>,
    pub(super) price_interval: Option<String>,
    pub(super) max_assets: Option<u64>,
    pub(super) futures_api_url: Option<String>,
    pub(super) rate_limit_tier: Option<String>,
    #[serde(default)]
    pub(super) accounts: Vec<RawAccount>,
    /// Every other top-level key: the endpoints' (`key_info_interval`).
    #[serde(flatten)]
    pub(super) options: Options,
}

#[derive(Deserialize)]
pub(super) struct RawAccount {
    #[serde(default, deserialize_with = "strict_string")]
    pub(super) name: Option<String>,
    #[serde(default, deserialize_with = "strict_string")]
    pub(super) api_key: Option<String>,
    pub(super) api_secret_file: Option<PathBuf>,
    pub(super) api_otp_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "strict_string")]
    pub(super) futures_api_key: Option<String>,
    pub(super) futures_api_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) min_available: Vec<RawMinAvailable>,
    #[serde(default)]
    pub(super) min_spendable: Vec<RawMinSpendable>,
    /// Every other key: the options of the endpoints the account turns on (`margin = true`).
    #[serde(flatten)]
    pub(super) options: Options,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMinAvailable {
    pub(super) asset: Option<String>,
    pub(super) family: Option<String>,
    pub(super) amount: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMinSpendable {
    pub(super) asset: Option<String>,
    pub(super) amount: Option<String>,
}

/// A string written as a string: the config crate would otherwise turn `name = 123` or
/// `api_key = 42` into text, hiding a value that was never a name or a key.
fn strict_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct Strict;
    impl serde::de::Visitor<'_> for Strict {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string in quotes")
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(Some(value.to_string()))
        }
        fn visit_string<E: serde::de::Error>(self, value: String) -> Result<Self::Value, E> {
            Ok(Some(value))
        }
    }
    deserializer.deserialize_any(Strict)
}
