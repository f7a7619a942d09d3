//! `KRAKEN_EXPORTER_*` overrides and the `default` account from `KRAKEN_API_KEY`.

use std::collections::BTreeMap;
use std::path::Path;

use super::secrets::{read_otp_file, read_secret_file};
use super::{err, AccountSettings, ConfigError, ENV_PREFIX};

/// Top-level keys that `KRAKEN_EXPORTER_<KEY>` may override (accounts come from the file or from
/// `KRAKEN_API_KEY`).
const ENV_KEYS: &[&str] = &[
    "api_url",
    "poll_interval",
    "request_timeout",
    "rebase_multiplier",
    "max_backoff",
    "stale_after",
    "price_interval",
    "quote_currencies",
    "max_assets",
];

/// The `KRAKEN_EXPORTER_*` variables that name a config key. Others are ignored with a warning rather
/// than refused, because platforms set variables with this prefix on their own: Kubernetes adds
/// `KRAKEN_EXPORTER_SERVICE_HOST`, `KRAKEN_EXPORTER_PORT`, ... for a Service named `kraken-exporter`.
pub(super) fn env_overrides(env: &BTreeMap<String, String>) -> config::Map<String, String> {
    let prefix = format!("{ENV_PREFIX}_");
    let mut overrides = config::Map::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(&prefix) else {
            continue;
        };
        let top_level = key.split("__").next().unwrap_or(key).to_lowercase();
        if ENV_KEYS.contains(&top_level.as_str()) {
            overrides.insert(name.clone(), value.clone());
        } else if !is_kubernetes_service_link(key) {
            tracing::warn!(
                variable = %name,
                "ignoring an environment variable that names no config key; overridable keys: {}",
                ENV_KEYS.join(", ")
            );
        }
    }
    overrides
}

/// `SERVICE_HOST`, `SERVICE_PORT[_NAME]`, `PORT`, `PORT_9877_TCP[_PROTO|_PORT|_ADDR]`.
fn is_kubernetes_service_link(key: &str) -> bool {
    key.starts_with("SERVICE_HOST")
        || key.starts_with("SERVICE_PORT")
        || key == "PORT"
        || key.starts_with("PORT_")
}

/// The `default` account from `KRAKEN_API_KEY` and `KRAKEN_API_SECRET` / `KRAKEN_API_SECRET_FILE`.
pub(super) fn account_from_env(
    env: &BTreeMap<String, String>,
) -> Result<Option<AccountSettings>, ConfigError> {
    let get = |key: &str| env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let key = get("KRAKEN_API_KEY");
    let secret = get("KRAKEN_API_SECRET");
    let secret_file = get("KRAKEN_API_SECRET_FILE");
    let Some(api_key) = key else {
        if secret.is_some() || secret_file.is_some() || get("KRAKEN_API_OTP_FILE").is_some() {
            return Err(err(
                "KRAKEN_API_SECRET, KRAKEN_API_SECRET_FILE or KRAKEN_API_OTP_FILE is set but KRAKEN_API_KEY is not; set the API key too",
            ));
        }
        return Ok(None);
    };
    let api_secret = match (secret, secret_file) {
        (Some(_), Some(_)) => {
            return Err(err(
                "both KRAKEN_API_SECRET and KRAKEN_API_SECRET_FILE are set; keep only one",
            ))
        }
        (Some(secret), None) => super::secrets::environment_secret(secret)
            .map_err(|e| err(format!("KRAKEN_API_SECRET: {e}")))?,
        (None, Some(file)) => read_secret_file(Path::new(file))
            .map_err(|e| err(format!("KRAKEN_API_SECRET_FILE: {e}")))?,
        (None, None) => {
            return Err(err(
                "KRAKEN_API_KEY is set but neither KRAKEN_API_SECRET nor KRAKEN_API_SECRET_FILE is; set one of them",
            ))
        }
    };
    let api_otp = get("KRAKEN_API_OTP_FILE")
        .map(|file| {
            read_otp_file(Path::new(file)).map_err(|e| err(format!("KRAKEN_API_OTP_FILE: {e}")))
        })
        .transpose()?;
    let mut account = AccountSettings::new("default", api_key, Vec::new());
    account.api_secret = api_secret;
    account.api_otp = api_otp;
    Ok(Some(account))
}
