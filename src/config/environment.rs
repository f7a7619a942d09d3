//! `KRAKEN_EXPORTER_*` overrides and the `default` account from `KRAKEN_API_KEY`, with its thresholds
//! from `KRAKEN_MIN_SPENDABLE` and `KRAKEN_MIN_AVAILABLE`. A problem with a value that came from a
//! variable names the variable.

use std::collections::BTreeMap;
use std::path::Path;

use super::secrets::{read_otp_file, read_secret_file};
use secrecy::{SecretSlice, SecretString};

use super::{err, AccountSettings, ConfigError, FuturesSettings, MinSpendable, ENV_PREFIX};

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
/// `endpoint_keys`: the endpoints' top-level options, overridable as the configuration's own.
pub(super) fn env_overrides(
    env: &BTreeMap<String, String>,
    endpoint_keys: &[&str],
) -> config::Map<String, String> {
    let prefix = format!("{ENV_PREFIX}_");
    let mut overrides = config::Map::new();
    for (name, value) in env {
        let Some(key) = name.strip_prefix(&prefix) else {
            continue;
        };
        let top_level = key.split("__").next().unwrap_or(key).to_lowercase();
        if ENV_KEYS.contains(&top_level.as_str()) || endpoint_keys.contains(&top_level.as_str()) {
            overrides.insert(name.clone(), value.clone());
        } else if !is_kubernetes_service_link(key) {
            tracing::warn!(
                variable = %name,
                "ignoring an environment variable that names no config key; overridable keys: {}",
                ENV_KEYS
                    .iter()
                    .chain(endpoint_keys)
                    .copied()
                    .collect::<Vec<&str>>()
                    .join(", ")
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
    "KRAKEN_MIN_SPENDABLE",
    "KRAKEN_MIN_AVAILABLE",
];

/// The environment account's variables that are set (`KRAKEN_API_KEY is` / `A, B are`), if any: a
/// file with accounts makes them ignored, which is worth a warning.
pub(super) fn account_variables_set(env: &BTreeMap<String, String>) -> Option<String> {
    variables_set(env, ACCOUNT_VARIABLES)
}

/// Which of `names` are set, as a sentence's subject (`A is` / `A, B are`), if any.
fn variables_set(env: &BTreeMap<String, String>, names: &[&str]) -> Option<String> {
    let set: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| set_value(env, name).is_some())
        .collect();
    match set.as_slice() {
        [] => None,
        [one] => Some(format!("{one} is")),
        many => Some(format!("{} are", many.join(", "))),
    }
}

/// `message` about a top-level key, prefixed with the variable it came from when a
/// `KRAKEN_EXPORTER_<KEY>` variable set it (`KRAKEN_EXPORTER_POLL_INTERVAL: poll_interval = "1" is
/// not a duration ...`), so the operator looks where the value is.
pub(super) fn name_the_variable(message: String, env: &BTreeMap<String, String>) -> String {
    let mentions = |key: &str| {
        message.match_indices(key).any(|(at, _)| {
            let before = message[..at].chars().next_back();
            let after = message[at + key.len()..].chars().next();
            let word =
                |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
            !word(before) && !word(after)
        })
    };
    let from: Vec<String> = ENV_KEYS
        .iter()
        .filter(|key| mentions(key))
        .map(|key| format!("{ENV_PREFIX}_{}", key.to_ascii_uppercase()))
        .filter(|variable| set_value(env, variable).is_some())
        .collect();
    if from.is_empty() {
        message
    } else {
        format!("{} (set by the environment): {message}", from.join(", "))
    }
}

/// The `default` account from `KRAKEN_API_KEY` and `KRAKEN_API_SECRET` / `KRAKEN_API_SECRET_FILE`,
/// with its futures key pair from `KRAKEN_FUTURES_API_KEY` and `KRAKEN_FUTURES_API_SECRET` /
/// `KRAKEN_FUTURES_API_SECRET_FILE` when set.
pub(super) fn account_from_env(
    env: &BTreeMap<String, String>,
) -> Result<Option<AccountSettings>, ConfigError> {
    let get = |key: &str| set_value(env, key);
    let Some(api_key) = get("KRAKEN_API_KEY") else {
        if let Some(set) = variables_set(env, &ACCOUNT_VARIABLES[1..]) {
            return Err(err(format!(
                "{set} set but KRAKEN_API_KEY is not; set the API key too"
            )));
        }
        return Ok(None);
    };
    let api_secret = key_secret(env, "KRAKEN_API_KEY", "KRAKEN_API_SECRET")?;
    let source = if get("KRAKEN_API_SECRET").is_some() {
        "KRAKEN_API_SECRET"
    } else {
        "KRAKEN_API_SECRET_FILE"
    };
    super::secrets::check_private_key_length(&api_secret, source).map_err(err)?;
    let api_otp = get("KRAKEN_API_OTP_FILE")
        .map(|file| {
            read_otp_file(Path::new(file)).map_err(|e| err(format!("KRAKEN_API_OTP_FILE: {e}")))
        })
        .transpose()?;
    let mut account = AccountSettings::new("default", api_key, Vec::new());
    account.api_secret = api_secret;
    account.api_otp = api_otp;
    if let Some(list) = get("KRAKEN_MIN_SPENDABLE") {
        for (index, (asset, amount)) in thresholds("KRAKEN_MIN_SPENDABLE", list)?
            .into_iter()
            .enumerate()
        {
            let at = format!("KRAKEN_MIN_SPENDABLE[{index}]");
            account.min_spendable.push(MinSpendable {
                asset: super::thresholds::threshold_asset(&at, Some(asset))?,
                amount: super::thresholds::threshold_amount(&at, Some(amount))?,
            });
        }
    }
    if let Some(list) = get("KRAKEN_MIN_AVAILABLE") {
        for (index, (asset, amount)) in thresholds("KRAKEN_MIN_AVAILABLE", list)?
            .into_iter()
            .enumerate()
        {
            let at = format!("KRAKEN_MIN_AVAILABLE[{index}]");
            // `DOT/staked=100`: a family after a slash; spot without one.
            let (asset, family) = match asset.split_once('/') {
                Some((asset, family)) => (asset.to_string(), Some(family.to_string())),
                None => (asset, None),
            };
            account
                .min_available
                .push(super::thresholds::validate_min_available(
                    &at,
                    super::schema::RawMinAvailable {
                        asset: Some(asset),
                        family,
                        amount: Some(amount),
                    },
                )?);
        }
    }
    super::thresholds::no_repeated_thresholds("the environment account", &account)?;
    account.futures = match get("KRAKEN_FUTURES_API_KEY") {
        Some(key) => Some(FuturesSettings {
            api_key: SecretString::from(key.to_string()),
            api_secret: key_secret(env, "KRAKEN_FUTURES_API_KEY", "KRAKEN_FUTURES_API_SECRET")?,
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

/// The `ASSET=amount` pairs of a comma-separated threshold list (`XBT=0.5,USD=1000`).
fn thresholds(variable: &str, list: &str) -> Result<Vec<(String, String)>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.split_once('=')
                .map(|(asset, amount)| (asset.trim().to_string(), amount.trim().to_string()))
                .ok_or_else(|| {
                    err(format!(
                        "{variable}: {item:?} is not ASSET=AMOUNT; write e.g. {variable}=\"XBT=0.5,USD=1000\""
                    ))
                })
        })
        .collect()
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
