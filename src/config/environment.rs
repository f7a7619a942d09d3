//! `KRAKEN_EXPORTER_*` overrides and the `default` account from `KRAKEN_API_KEY`.

use std::collections::BTreeMap;
use std::path::Path;

use super::secrets::{read_otp_file, read_secret_file};
use secrecy::{SecretSlice, SecretString};

use super::{err, AccountSettings, ConfigError, FuturesSettings, ENV_PREFIX};

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
    "futures_api_url",
    "rate_limit_tier",
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

/// The value of `key` in `env`, trimmed, unless it is unset or blank.
fn set_value<'a>(env: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Every variable the environment account is read from, its key first.
pub const ACCOUNT_VARIABLES: &[&str] = &[
    "KRAKEN_API_KEY",
    "KRAKEN_API_SECRET",
    "KRAKEN_API_SECRET_FILE",
    "KRAKEN_API_OTP_FILE",
    "KRAKEN_FUTURES_API_KEY",
    "KRAKEN_FUTURES_API_SECRET",
    "KRAKEN_FUTURES_API_SECRET_FILE",
];

/// The `default` account from `KRAKEN_API_KEY` and `KRAKEN_API_SECRET` / `KRAKEN_API_SECRET_FILE`,
/// with its futures key pair from `KRAKEN_FUTURES_API_KEY` and `KRAKEN_FUTURES_API_SECRET` /
/// `KRAKEN_FUTURES_API_SECRET_FILE` when set.
pub(super) fn account_from_env(
    env: &BTreeMap<String, String>,
) -> Result<Option<AccountSettings>, ConfigError> {
    let get = |key: &str| set_value(env, key);
    let Some(api_key) = get("KRAKEN_API_KEY") else {
        let set: Vec<&str> = ACCOUNT_VARIABLES[1..]
            .iter()
            .copied()
            .filter(|name| get(name).is_some())
            .collect();
        if !set.is_empty() {
            return Err(err(format!(
                "{} set but KRAKEN_API_KEY is not; set the API key too",
                if set.len() == 1 {
                    format!("{} is", set[0])
                } else {
                    format!("{} are", set.join(", "))
                }
            )));
        }
        return Ok(None);
    };
    let api_secret = key_secret(env, "KRAKEN_API_KEY", "KRAKEN_API_SECRET")?;
    let api_otp = get("KRAKEN_API_OTP_FILE")
        .map(|file| {
            read_otp_file(Path::new(file)).map_err(|e| err(format!("KRAKEN_API_OTP_FILE: {e}")))
        })
        .transpose()?;
    let mut account = AccountSettings::new("default", api_key, Vec::new());
    account.api_secret = api_secret;
    account.api_otp = api_otp;
    account.futures = match get("KRAKEN_FUTURES_API_KEY") {
        Some(key) => Some(FuturesSettings {
            api_key: SecretString::from(key.to_string()),
            api_secret: key_secret(env, "KRAKEN_FUTURES_API_KEY", "KRAKEN_FUTURES_API_SECRET")?,
            min_margin_ratio: None,
        }),
        None if get("KRAKEN_FUTURES_API_SECRET").is_some()
            || get("KRAKEN_FUTURES_API_SECRET_FILE").is_some() =>
        {
            return Err(err(
                "KRAKEN_FUTURES_API_SECRET or KRAKEN_FUTURES_API_SECRET_FILE is set but KRAKEN_FUTURES_API_KEY is not; set the futures API key too",
            ))
        }
        None => None,
    };
    Ok(Some(account))
}

/// The decoded secret of the key in `key_variable`, from `secret_variable` (base64) or
/// `<secret_variable>_FILE`: exactly one of them.
fn key_secret(
    env: &BTreeMap<String, String>,
    key_variable: &str,
    secret_variable: &str,
) -> Result<SecretSlice<u8>, ConfigError> {
    let get = |key: &str| set_value(env, key);
    let file_variable = format!("{secret_variable}_FILE");
    match (get(secret_variable), get(&file_variable)) {
        (Some(_), Some(_)) => Err(err(format!(
            "both {secret_variable} and {file_variable} are set; keep only one"
        ))),
        (Some(secret), None) => super::secrets::environment_secret(secret_variable, secret)
            .map_err(|e| err(format!("{secret_variable}: {e}"))),
        (None, Some(file)) => {
            read_secret_file(Path::new(file), "api_secret_file").map_err(|e| err(format!("{file_variable}: {e}")))
        }
        (None, None) => Err(err(format!(
            "{key_variable} is set but neither {secret_variable} nor {file_variable} is; set one of them"
        ))),
    }
}
