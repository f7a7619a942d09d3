//! The file's shape, as serde reads it: every key optional here, so that validation can say which one
//! is missing; unknown keys refused.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    #[serde(default)]
    pub(super) accounts: Vec<RawAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub(super) name: Option<String>,
    pub(super) api_key: Option<String>,
    pub(super) api_secret_file: Option<PathBuf>,
    pub(super) api_otp_file: Option<PathBuf>,
    pub(super) margin: Option<bool>,
    pub(super) margin_asset: Option<String>,
    pub(super) min_margin_level: Option<String>,
    pub(super) earn: Option<bool>,
    pub(super) futures_api_key: Option<String>,
    pub(super) futures_api_secret_file: Option<PathBuf>,
    pub(super) futures_min_margin_ratio: Option<String>,
    #[serde(default)]
    pub(super) min_available: Vec<RawMinAvailable>,
    #[serde(default)]
    pub(super) min_spendable: Vec<RawMinSpendable>,
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
