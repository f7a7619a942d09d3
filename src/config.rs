//! Typed settings: loaded from a TOML file and `KRAKEN_EXPORTER_*` environment variables, validated
//! once, then trusted.
//!
//! Every problem is reported as one [`ConfigError`] line that names the key or file and says what to do;
//! no message ever contains a secret. Secrets are held in `secrecy` types from the moment they are read.
//!
//! Sources, later ones winning: the `--config` file, then `KRAKEN_EXPORTER_<KEY>` variables
//! (`KRAKEN_EXPORTER_POLL_INTERVAL=10s`; nested keys use `__`). When no account is configured at all,
//! `KRAKEN_API_KEY` with `KRAKEN_API_SECRET` (base64) or `KRAKEN_API_SECRET_FILE` define one account
//! named `default`, so a container needs no file.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{SecretSlice, SecretString};
use serde::Deserialize;

use crate::kraken::assets::modern_code;
use crate::kraken::sign::decode_secret;
use crate::kraken::{AssetFamily, RebaseMultiplier};
use rust_decimal::Decimal;

/// The prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "KRAKEN_EXPORTER";
pub const DEFAULT_API_URL: &str = "https://api.kraken.com";
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_PRICE_INTERVAL: Duration = Duration::from_secs(60);
pub const MIN_PRICE_INTERVAL: Duration = Duration::from_secs(5);

/// Validated settings.
#[derive(Debug)]
pub struct Settings {
    /// Base URL without a trailing slash; requests go to `{api_url}/0/private/BalanceEx`.
    pub api_url: String,
    pub poll_interval: Duration,
    pub request_timeout: Duration,
    pub rebase_multiplier: Option<RebaseMultiplier>,
    /// The longest wait between attempts after failures.
    pub max_backoff: Duration,
    /// When set, an account's balance series are removed once its last success is older than this.
    pub stale_after: Option<Duration>,
    /// Currencies to value balances in; empty turns valuation (and the public API calls) off.
    pub quote_currencies: Vec<String>,
    /// How often prices are refreshed from Kraken's public API.
    pub price_interval: Duration,
    pub accounts: Vec<AccountSettings>,
}

impl Settings {
    /// Settings with every default (as a file with only `api_url` and these accounts would give):
    /// the one builder of the demo and the tests, which then change what they need.
    pub fn with_defaults(api_url: impl Into<String>, accounts: Vec<AccountSettings>) -> Self {
        Self {
            api_url: api_url.into(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            rebase_multiplier: None,
            max_backoff: DEFAULT_MAX_BACKOFF,
            stale_after: None,
            quote_currencies: vec!["USD".to_string()],
            price_interval: DEFAULT_PRICE_INTERVAL,
            accounts,
        }
    }
}

impl AccountSettings {
    /// An account without thresholds; `api_secret` already base64-decoded.
    pub fn new(name: impl Into<String>, api_key: impl Into<String>, api_secret: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            api_key: SecretString::from(api_key.into()),
            api_secret: SecretSlice::from(api_secret),
            min_available: Vec::new(),
        }
    }
}

/// One Kraken account (one API key).
#[derive(Debug)]
pub struct AccountSettings {
    /// The `account` label value.
    pub name: String,
    pub api_key: SecretString,
    /// The decoded private key.
    pub api_secret: SecretSlice<u8>,
    /// Alert thresholds, exported as `kraken_balance_available_min`.
    pub min_available: Vec<MinAvailable>,
}

/// A minimum available amount for one asset and family of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinAvailable {
    /// The `asset` label value (legacy codes such as `ZUSD` are written as their modern name `USD`).
    pub asset: String,
    pub family: AssetFamily,
    pub amount: Decimal,
}

/// A configuration problem, as one line for the operator.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    api_url: Option<String>,
    poll_interval: Option<String>,
    request_timeout: Option<String>,
    rebase_multiplier: Option<String>,
    max_backoff: Option<String>,
    stale_after: Option<String>,
    quote_currencies: Option<Vec<String>>,
    price_interval: Option<String>,
    #[serde(default)]
    accounts: Vec<RawAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    name: Option<String>,
    api_key: Option<String>,
    api_secret_file: Option<PathBuf>,
    #[serde(default)]
    min_available: Vec<RawMinAvailable>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinAvailable {
    asset: Option<String>,
    family: Option<String>,
    amount: Option<String>,
}

/// The process environment, read once at start; `KRAKEN_API_SECRET` is then removed from the process
/// and its text overwritten, so it is neither inherited by children nor readable in
/// `/proc/<pid>/environ`. Call before any thread starts (the environment is not thread-safe).
pub fn take_environment() -> BTreeMap<String, String> {
    let env: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    if env.contains_key(SECRET_VARIABLE) {
        scrub_variable(SECRET_VARIABLE);
    }
    env
}

/// The environment variable that may hold an API secret itself.
const SECRET_VARIABLE: &str = "KRAKEN_API_SECRET";

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn scrub_variable(name: &str) {
    let prefix = format!("{name}=");
    // SAFETY: called before any other thread exists (see `take_environment`), so nothing reads or
    // changes the environment meanwhile; `environ` is a null-terminated array of null-terminated
    // strings, and only the bytes of the value (up to its terminator) are overwritten in place.
    unsafe {
        let mut entry = libc::environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = std::ffi::CStr::from_ptr(*entry);
            if text.to_bytes().starts_with(prefix.as_bytes()) {
                let value = (*entry).add(prefix.len());
                let len = text.to_bytes().len() - prefix.len();
                std::ptr::write_bytes(value, 0, len);
            }
            entry = entry.add(1);
        }
    }
    std::env::remove_var(name);
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn scrub_variable(name: &str) {
    std::env::remove_var(name);
}

impl Settings {
    /// Loads from an environment taken with [`take_environment`] and an optional file.
    pub fn load(file: Option<&Path>, env: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, env)
    }

    /// Loads with an explicit environment (tests pass their own).
    pub fn load_with_env(
        file: Option<&Path>,
        env: BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(format!(
                    "cannot read config file {}: {e}; check the --config path and its permissions",
                    path.display()
                ))
            })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let overrides = env_overrides(&env);
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("_")
                .separator("__")
                // Lists are comma-separated: KRAKEN_EXPORTER_QUOTE_CURRENCIES=USD,EUR.
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("quote_currencies")
                .source(Some(overrides)),
        );
        let where_ = file.map_or_else(
            || "the environment".to_string(),
            |p| format!("config file {}", p.display()),
        );
        let raw: RawSettings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| err(explain_config_error(&e.to_string(), &where_)))?;
        Self::validate(raw, &env)
    }

    fn validate(raw: RawSettings, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let api_url = match raw.api_url {
            None => DEFAULT_API_URL.to_string(),
            Some(url) => validate_url(&url)?,
        };
        let poll_interval =
            parse_duration("poll_interval", raw.poll_interval, DEFAULT_POLL_INTERVAL)?;
        if poll_interval < MIN_POLL_INTERVAL {
            return Err(err(format!(
                "poll_interval = {:?} is below the minimum of 1s; Kraken's rate limits make faster polling pointless",
                humantime::format_duration(poll_interval).to_string()
            )));
        }
        let request_timeout = parse_duration(
            "request_timeout",
            raw.request_timeout,
            DEFAULT_REQUEST_TIMEOUT,
        )?;
        let max_backoff = parse_duration("max_backoff", raw.max_backoff, DEFAULT_MAX_BACKOFF)?;
        if max_backoff < poll_interval {
            return Err(err(format!(
                "max_backoff ({}) is shorter than poll_interval ({}); make it at least as long",
                humantime::format_duration(max_backoff),
                humantime::format_duration(poll_interval)
            )));
        }
        let stale_after = match raw.stale_after {
            None => None,
            Some(text) => {
                let stale_after = parse_duration("stale_after", Some(text), Duration::ZERO)?;
                if stale_after <= poll_interval {
                    return Err(err(format!(
                        "stale_after ({}) must be longer than poll_interval ({}), or balances would vanish between polls; several intervals is typical, e.g. \"10m\"",
                        humantime::format_duration(stale_after),
                        humantime::format_duration(poll_interval)
                    )));
                }
                Some(stale_after)
            }
        };
        let quote_currencies = validate_quotes(raw.quote_currencies)?;
        let price_interval =
            parse_duration("price_interval", raw.price_interval, DEFAULT_PRICE_INTERVAL)?;
        if price_interval < MIN_PRICE_INTERVAL {
            return Err(err(format!(
                "price_interval ({}) is below the minimum of 5s; prices come from Kraken's public API, which limits call rates",
                humantime::format_duration(price_interval)
            )));
        }
        let rebase_multiplier = match raw.rebase_multiplier.as_deref().map(str::trim) {
            None => None,
            Some("rebased") => Some(RebaseMultiplier::Rebased),
            Some("base") => Some(RebaseMultiplier::Base),
            Some(other) => {
                return Err(err(format!(
                    "rebase_multiplier = {other:?} is not valid; use \"rebased\" or \"base\", or leave it out"
                )))
            }
        };

        let mut accounts = Vec::with_capacity(raw.accounts.len());
        for (index, account) in raw.accounts.into_iter().enumerate() {
            accounts.push(validate_account(index, account)?);
        }
        if accounts.is_empty() {
            if let Some(account) = account_from_env(env)? {
                accounts.push(account);
            }
        }
        if accounts.is_empty() {
            return Err(err(
                "no accounts configured; add an [[accounts]] table with name, api_key and api_secret_file to the config file, or set KRAKEN_API_KEY and KRAKEN_API_SECRET_FILE (or run with --demo)",
            ));
        }
        let mut names = HashSet::new();
        let mut keys: BTreeMap<&str, &str> = BTreeMap::new();
        for account in &accounts {
            if !names.insert(account.name.as_str()) {
                return Err(err(format!(
                    "accounts: the name {:?} is used twice; every account needs its own name (it is the account label)",
                    account.name
                )));
            }
            let key = secrecy::ExposeSecret::expose_secret(&account.api_key);
            if let Some(first) = keys.insert(key, account.name.as_str()) {
                return Err(err(format!(
                    "accounts {first:?} and {:?} use the same api_key; Kraken keeps one nonce sequence per key, so two pollers of one key reject each other: give each account its own key",
                    account.name
                )));
            }
        }
        Ok(Self {
            api_url,
            poll_interval,
            request_timeout,
            rebase_multiplier,
            max_backoff,
            stale_after,
            quote_currencies,
            price_interval,
            accounts,
        })
    }

    /// A one-line summary without secrets, for `--check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.accounts.iter().map(|a| a.name.as_str()).collect();
        format!(
            "{} account(s) [{}], api_url {}, poll_interval {}, request_timeout {}, rebase_multiplier {}, max_backoff {}, stale_after {}, quote_currencies [{}], price_interval {}",
            self.accounts.len(),
            names.join(", "),
            self.api_url,
            humantime::format_duration(self.poll_interval),
            humantime::format_duration(self.request_timeout),
            self.rebase_multiplier.map_or("unset", RebaseMultiplier::as_str),
            humantime::format_duration(self.max_backoff),
            self.stale_after
                .map_or("off".to_string(), |d| humantime::format_duration(d).to_string()),
            self.quote_currencies.join(", "),
            humantime::format_duration(self.price_interval),
        )
    }
}

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
];

/// The `KRAKEN_EXPORTER_*` variables that name a config key. Others are ignored with a warning rather
/// than refused, because platforms set variables with this prefix on their own: Kubernetes adds
/// `KRAKEN_EXPORTER_SERVICE_HOST`, `KRAKEN_EXPORTER_PORT`, ... for a Service named `kraken-exporter`.
fn env_overrides(env: &BTreeMap<String, String>) -> config::Map<String, String> {
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

/// `quote_currencies`: default `["USD"]`; codes as in the `asset` label; no blanks or repeats.
fn validate_quotes(raw: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(vec!["USD".to_string()]);
    };
    let mut quotes: Vec<String> = Vec::with_capacity(raw.len());
    for quote in raw {
        let code = quote.trim();
        if code.is_empty() || code.contains(char::is_whitespace) {
            return Err(err(format!(
                "quote_currencies: {quote:?} is not a currency code; use codes like \"USD\", \"EUR\" or \"XBT\", or [] to turn valuation off"
            )));
        }
        let code = modern_code(code).to_string();
        if quotes.contains(&code) {
            return Err(err(format!("quote_currencies lists {code:?} twice")));
        }
        quotes.push(code);
    }
    Ok(quotes)
}

/// Turns the config crate's messages into one line that names where the problem is and what to do.
fn explain_config_error(message: &str, where_: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = rest.split(',').next().unwrap_or(rest).trim_matches('`');
        return format!(
            "unknown key {field:?} in {where_}; check the spelling against the README's configuration reference"
        );
    }
    // TOML syntax errors span several lines with a source excerpt: keep the position and the cause.
    let lines: Vec<&str> = message
        .lines()
        .map(|l| l.trim().trim_start_matches(['|', '^', ' ']).trim())
        .filter(|l| !l.is_empty() && !l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    let one_line = match lines.as_slice() {
        [] => message.to_string(),
        [only] => only.to_string(),
        [first, .., last] => format!("{first}: {last}"),
    };
    format!("invalid configuration in {where_}: {one_line}")
}

fn validate_url(url: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    // Never echo a URL that may carry a password: name it without its user-info part.
    let shown = redact_userinfo(trimmed);
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| {
        err(format!(
            "api_url = {shown:?} is not a valid URL ({e}); use e.g. \"https://api.kraken.com\""
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(err(format!(
            "api_url = {shown:?} must be an http or https URL with a host, e.g. \"https://api.kraken.com\""
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err(format!(
            "api_url = {shown:?} carries a user name or password; Kraken authenticates by API key, so remove the user-info part (it would be printed in logs)"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(err(format!(
            "api_url = {shown:?} must not contain a query or fragment; give the scheme and host only, e.g. \"https://api.kraken.com\""
        )));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(err(format!(
            "api_url = {shown:?} must not contain a path; the exporter appends /0/private/BalanceEx itself"
        )));
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(err(format!(
            "api_url = {shown:?} is plain http to a host that is not this machine: the API key, signatures and balances would cross the network in clear text; use https (plain http is allowed to loopback addresses only, for local proxies)"
        )));
    }
    Ok(trimmed.to_string())
}

/// Whether the URL's host is a loopback address (`127.0.0.0/8`, `::1`) or `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => {
            let host = host.to_ascii_lowercase();
            host == "localhost" || host.ends_with(".localhost")
        }
    }
}

/// `scheme://user:password@host` shown as `scheme://***@host`.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Parses a humantime duration (`30s`, `1m 30s`); zero is never valid.
pub fn parse_duration(
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(text) = value else {
        return Ok(default);
    };
    let duration = humantime::parse_duration(text.trim()).map_err(|e| {
        err(format!(
            "{key} = {text:?} is not a duration ({e}); write it with a unit, e.g. \"30s\", \"2m\" or \"1h\""
        ))
    })?;
    if duration.is_zero() {
        return Err(err(format!(
            "{key} = {text:?} must be longer than zero, e.g. \"30s\""
        )));
    }
    Ok(duration)
}

fn validate_account(index: usize, raw: RawAccount) -> Result<AccountSettings, ConfigError> {
    let at = format!("accounts[{index}]");
    let name = raw.name.map(|n| n.trim().to_string()).unwrap_or_default();
    if name.is_empty() {
        return Err(err(format!(
            "{at}: name is missing or empty; give every account a short unique name (it becomes the account label)"
        )));
    }
    let at = format!("account {name:?}");
    let api_key = raw
        .api_key
        .map(|k| k.trim().to_string())
        .unwrap_or_default();
    if api_key.is_empty() {
        return Err(err(format!(
            "{at}: api_key is missing or empty; paste the API key (the public one) from Kraken's API settings"
        )));
    }
    let path = raw.api_secret_file.ok_or_else(|| {
        err(format!(
            "{at}: api_secret_file is missing; point it at a file that holds the key's base64 private key"
        ))
    })?;
    let api_secret = read_secret_file(&path).map_err(|e| err(format!("{at}: {e}")))?;
    let mut min_available: Vec<MinAvailable> = Vec::with_capacity(raw.min_available.len());
    for (index, raw) in raw.min_available.into_iter().enumerate() {
        let minimum = validate_min_available(&format!("{at}: min_available[{index}]"), raw)?;
        if min_available
            .iter()
            .any(|m| m.asset == minimum.asset && m.family == minimum.family)
        {
            return Err(err(format!(
                "{at}: min_available lists asset {:?} family {:?} twice; keep one threshold per asset and family",
                minimum.asset,
                minimum.family.label()
            )));
        }
        min_available.push(minimum);
    }
    Ok(AccountSettings {
        name,
        api_key: SecretString::from(api_key),
        api_secret,
        min_available,
    })
}

fn validate_min_available(at: &str, raw: RawMinAvailable) -> Result<MinAvailable, ConfigError> {
    let asset = raw.asset.map(|a| a.trim().to_string()).unwrap_or_default();
    if asset.is_empty() {
        return Err(err(format!(
            "{at}: asset is missing; name the asset as it appears in the asset label, e.g. asset = \"USD\""
        )));
    }
    let family = raw
        .family
        .map(|f| f.trim().to_string())
        .unwrap_or_else(|| "spot".to_string());
    if family.is_empty() {
        return Err(err(format!(
            "{at}: family is empty; use a family label such as \"spot\" or \"staked\", or leave it out for spot"
        )));
    }
    let text = raw.amount.unwrap_or_default();
    let amount = Decimal::from_str_exact(text.trim()).map_err(|_| {
        err(format!(
            "{at}: amount = {text:?} is not a decimal number; write it as a string such as amount = \"5000\" or \"0.25\""
        ))
    })?;
    if amount.is_sign_negative() {
        return Err(err(format!(
            "{at}: amount = {text:?} is negative; a minimum available amount is 0 or more"
        )));
    }
    Ok(MinAvailable {
        asset: modern_code(&asset).to_string(),
        family: AssetFamily::from_label(&family),
        amount,
    })
}

/// Reads and decodes a secret file; warns when group or others can read it.
pub fn read_secret_file(path: &Path) -> Result<SecretSlice<u8>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read api_secret_file {}: {e}; check the path and that the exporter's user may read it",
            path.display()
        )
    })?;
    warn_if_readable_by_others(path);
    let text = SecretString::from(text);
    let decoded = decode_secret(secrecy::ExposeSecret::expose_secret(&text))
        .map_err(|e| format!("api_secret_file {}: {e}", path.display()))?;
    Ok(SecretSlice::from(decoded))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o044 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the API secret file is readable by group or others; restrict it with chmod 600"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The `default` account from `KRAKEN_API_KEY` and `KRAKEN_API_SECRET` / `KRAKEN_API_SECRET_FILE`.
fn account_from_env(
    env: &BTreeMap<String, String>,
) -> Result<Option<AccountSettings>, ConfigError> {
    let get = |key: &str| env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let key = get("KRAKEN_API_KEY");
    let secret = get("KRAKEN_API_SECRET");
    let secret_file = get("KRAKEN_API_SECRET_FILE");
    let Some(api_key) = key else {
        if secret.is_some() || secret_file.is_some() {
            return Err(err(
                "KRAKEN_API_SECRET or KRAKEN_API_SECRET_FILE is set but KRAKEN_API_KEY is not; set the API key too",
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
        (Some(secret), None) => SecretSlice::from(
            decode_secret(secret).map_err(|e| err(format!("KRAKEN_API_SECRET: {e}")))?,
        ),
        (None, Some(file)) => read_secret_file(Path::new(file))
            .map_err(|e| err(format!("KRAKEN_API_SECRET_FILE: {e}")))?,
        (None, None) => {
            return Err(err(
                "KRAKEN_API_KEY is set but neither KRAKEN_API_SECRET nor KRAKEN_API_SECRET_FILE is; set one of them",
            ))
        }
    };
    Ok(Some(AccountSettings {
        name: "default".to_string(),
        api_key: SecretString::from(api_key.to_string()),
        api_secret,
        min_available: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SECRET: &str =
        "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let mut secret = std::fs::File::create(dir.path().join("secret")).unwrap();
            writeln!(secret, "  {SECRET}  ").unwrap();
            std::fs::write(dir.path().join("bad-secret"), "this is not base64!!").unwrap();
            std::fs::write(dir.path().join("empty-secret"), "\n").unwrap();
            Self { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        fn load(&self, toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
            let toml = toml.replace("$DIR", &self.dir.path().display().to_string());
            let file = self.dir.path().join("config.toml");
            std::fs::write(&file, toml).unwrap();
            let env = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.replace("$DIR", &self.path(""))))
                .collect();
            Settings::load_with_env(Some(&file), env)
        }
    }

    const ONE_ACCOUNT: &str = r#"
        [[accounts]]
        name = "main"
        api_key = "KEY-abcd"
        api_secret_file = "$DIR/secret"
    "#;

    #[test]
    fn defaults_apply_to_a_minimal_file() {
        let settings = Fixture::new().load(ONE_ACCOUNT, &[]).unwrap();
        assert_eq!(settings.api_url, "https://api.kraken.com");
        assert_eq!(settings.poll_interval, Duration::from_secs(30));
        assert_eq!(settings.request_timeout, Duration::from_secs(10));
        assert_eq!(settings.rebase_multiplier, None);
        assert_eq!(settings.max_backoff, Duration::from_secs(900));
        assert_eq!(settings.stale_after, None);
        assert_eq!(settings.quote_currencies, vec!["USD".to_string()]);
        assert_eq!(settings.price_interval, Duration::from_secs(60));
        assert_eq!(settings.accounts.len(), 1);
        assert_eq!(settings.accounts[0].name, "main");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&settings.accounts[0].api_secret),
            decode_secret(SECRET).unwrap().as_slice()
        );
    }

    #[test]
    fn every_key_is_read_and_environment_overrides_the_file() {
        let toml = format!(
            "api_url = \"http://127.0.0.1:8080/\"\npoll_interval = \"1m\"\nrequest_timeout = \"3s\"\nrebase_multiplier = \"base\"\nmax_backoff = \"1h\"\nstale_after = \"10m\"\n{ONE_ACCOUNT}"
        );
        let settings = Fixture::new()
            .load(
                &toml,
                &[
                    ("KRAKEN_EXPORTER_POLL_INTERVAL", "45s"),
                    ("KRAKEN_EXPORTER_MAX_BACKOFF", "2h"),
                    ("KRAKEN_EXPORTER_STALE_AFTER", "20m"),
                    ("KRAKEN_EXPORTER_PRICE_INTERVAL", "90s"),
                    ("KRAKEN_EXPORTER_QUOTE_CURRENCIES", "EUR,XBT"),
                    ("KRAKEN_EXPORTER_REQUEST_TIMEOUT", "4s"),
                ],
            )
            .unwrap();
        assert_eq!(settings.api_url, "http://127.0.0.1:8080");
        assert_eq!(settings.poll_interval, Duration::from_secs(45));
        assert_eq!(settings.rebase_multiplier, Some(RebaseMultiplier::Base));
        assert_eq!(settings.max_backoff, Duration::from_secs(7200));
        assert_eq!(settings.stale_after, Some(Duration::from_secs(1200)));
        assert_eq!(settings.price_interval, Duration::from_secs(90));
        assert_eq!(
            settings.quote_currencies,
            vec!["EUR".to_string(), "XBT".to_string()]
        );
        assert_eq!(settings.request_timeout, Duration::from_secs(4));
    }

    #[test]
    fn environment_defines_a_default_account_when_none_is_configured() {
        let fixture = Fixture::new();
        let from_secret = fixture
            .load(
                "",
                &[("KRAKEN_API_KEY", "K1"), ("KRAKEN_API_SECRET", SECRET)],
            )
            .unwrap();
        assert_eq!(from_secret.accounts[0].name, "default");
        let from_file = fixture
            .load(
                "",
                &[
                    ("KRAKEN_API_KEY", "K1"),
                    ("KRAKEN_API_SECRET_FILE", "$DIR/secret"),
                ],
            )
            .unwrap();
        assert_eq!(from_file.accounts[0].name, "default");
    }

    #[test]
    fn invalid_input_is_refused_with_one_line_naming_the_problem() {
        let fixture = Fixture::new();
        let account = |extra: &str| format!("{ONE_ACCOUNT}{extra}");
        // (config file, environment, words the error must contain)
        type Case<'a> = (String, Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (account("\npoll_intervall = \"5s\""), vec![], vec!["poll_intervall", "unknown key"]),
            (format!("poll_interval = \"5 parsecs\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "5 parsecs"]),
            (format!("poll_interval = \"0s\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "longer than zero"]),
            (format!("poll_interval = \"500ms\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "minimum"]),
            (format!("poll_interval = \"-5s\"\n{ONE_ACCOUNT}"), vec![], vec!["poll_interval", "-5s"]),
            (format!("request_timeout = \"ten\"\n{ONE_ACCOUNT}"), vec![], vec!["request_timeout"]),
            (format!("request_timeout = \"0s\"\n{ONE_ACCOUNT}"), vec![], vec!["request_timeout", "zero"]),
            (format!("max_backoff = \"10s\"\n{ONE_ACCOUNT}"), vec![], vec!["max_backoff", "poll_interval"]),
            (format!("max_backoff = \"-1m\"\n{ONE_ACCOUNT}"), vec![], vec!["max_backoff"]),
            (format!("stale_after = \"20s\"\n{ONE_ACCOUNT}"), vec![], vec!["stale_after", "poll_interval"]),
            (format!("stale_after = \"soon\"\n{ONE_ACCOUNT}"), vec![], vec!["stale_after", "soon"]),
            (format!("quote_currencies = [\"USD\", \"\"]\n{ONE_ACCOUNT}"), vec![], vec!["quote_currencies"]),
            (format!("quote_currencies = [\"USD\", \"ZUSD\"]\n{ONE_ACCOUNT}"), vec![], vec!["quote_currencies", "twice"]),
            (format!("price_interval = \"1s\"\n{ONE_ACCOUNT}"), vec![], vec!["price_interval", "5s"]),
            (format!("rebase_multiplier = \"double\"\n{ONE_ACCOUNT}"), vec![], vec!["rebase_multiplier", "base"]),
            (format!("api_url = \"ftp://x\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url"]),
            (format!("api_url = \"https://api.kraken.com/0/private\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "path"]),
            (format!("api_url = \"http://api.kraken.com\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "clear text", "https"]),
            (format!("api_url = \"http://10.0.0.8:8080\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "loopback"]),
            (format!("api_url = \"https://user:hunter2@api.kraken.com\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "user name or password", "***@api.kraken.com"]),
            (format!("api_url = \"https://api.kraken.com/?x=1\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "query"]),
            (format!("api_url = \"https://api.kraken.com#top\"\n{ONE_ACCOUNT}"), vec![], vec!["api_url", "fragment"]),
            (format!("{ONE_ACCOUNT}{}", ONE_ACCOUNT.replace("\"main\"", "\"other\"")), vec![], vec!["\"main\"", "\"other\"", "same api_key"]),
            (String::new(), vec![], vec!["no accounts"]),
            (format!("{ONE_ACCOUNT}{ONE_ACCOUNT}"), vec![], vec!["\"main\"", "twice"]),
            (ONE_ACCOUNT.replace("\"main\"", "\"\""), vec![], vec!["name"]),
            (ONE_ACCOUNT.replace("KEY-abcd", " "), vec![], vec!["api_key"]),
            (ONE_ACCOUNT.replace("/secret", "/missing"), vec![], vec!["api_secret_file", "missing"]),
            (ONE_ACCOUNT.replace("/secret", "/bad-secret"), vec![], vec!["bad-secret", "base64"]),
            (ONE_ACCOUNT.replace("/secret", "/empty-secret"), vec![], vec!["empty-secret", "empty"]),
            (ONE_ACCOUNT.replace("api_secret_file = \"$DIR/secret\"", ""), vec![], vec!["api_secret_file"]),
            (account("\n[[accounts]]\nname = \"x\"\napi_key = \"k\"\napi_secret = \"inline\"\napi_secret_file=\"$DIR/secret\""), vec![], vec!["api_secret", "unknown key"]),
            ("poll_interval = \"5s\"\n[[accounts]\n".to_string(), vec![], vec!["line 2"]),
            (ONE_ACCOUNT.to_string(), vec![("KRAKEN_EXPORTER_POLL_INTERVAL", "5")], vec!["poll_interval", "unit"]),
            (String::new(), vec![("KRAKEN_API_KEY", "K")], vec!["KRAKEN_API_SECRET"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"-1\""), vec![], vec!["min_available[0]", "negative"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"lots\""), vec![], vec!["min_available[0]", "lots"]),
            (account("[[accounts.min_available]]\nasset = \"USD\""), vec![], vec!["min_available[0]", "amount"]),
            (account("[[accounts.min_available]]\namount = \"1\""), vec![], vec!["min_available[0]", "asset"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"1\"\nminimum = 2"), vec![], vec!["minimum", "unknown key"]),
            (account("[[accounts.min_available]]\nasset = \"USD\"\namount = \"1\"\n[[accounts.min_available]]\nasset = \"ZUSD\"\namount = \"2\""), vec![], vec!["USD", "twice"]),
            (String::new(), vec![("KRAKEN_API_SECRET", SECRET)], vec!["KRAKEN_API_KEY"]),
            (String::new(), vec![("KRAKEN_API_KEY", "K"), ("KRAKEN_API_SECRET", "%%%")], vec!["KRAKEN_API_SECRET", "base64"]),
        ];
        for (toml, env, words) in cases {
            let message = match fixture.load(&toml, &env) {
                Ok(_) => panic!("accepted invalid config:\n{toml}\n{env:?}"),
                Err(ConfigError(message)) => message,
            };
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(!message.contains(SECRET), "no secret: {message}");
            assert!(!message.contains("hunter2"), "no password: {message}");
            assert!(!message.contains("KEY-abcd"), "no API key: {message}");
            for word in words {
                assert!(
                    message.contains(word),
                    "{message:?} should mention {word:?}"
                );
            }
        }
    }

    #[test]
    fn plain_http_is_allowed_to_loopback_addresses_only() {
        let fixture = Fixture::new();
        for url in [
            "http://127.0.0.1:8080",
            "http://127.0.0.2",
            "http://[::1]:8080",
            "http://localhost:3128",
            "https://10.0.0.8",
        ] {
            let settings = fixture
                .load(&format!("api_url = \"{url}\"\n{ONE_ACCOUNT}"), &[])
                .unwrap_or_else(|e| panic!("{url} refused: {e}"));
            assert_eq!(settings.api_url, url);
        }
    }

    #[test]
    fn quote_currencies_can_be_chosen_or_turned_off() {
        let fixture = Fixture::new();
        let two = fixture
            .load(&format!("quote_currencies = [\"EUR\", \"XXBT\"]\nprice_interval = \"2m\"\n{ONE_ACCOUNT}"), &[])
            .unwrap();
        assert_eq!(
            two.quote_currencies,
            vec!["EUR".to_string(), "XBT".to_string()]
        );
        assert_eq!(two.price_interval, Duration::from_secs(120));
        let off = fixture
            .load(&format!("quote_currencies = []\n{ONE_ACCOUNT}"), &[])
            .unwrap();
        assert!(off.quote_currencies.is_empty());
    }

    #[test]
    fn minimum_available_amounts_are_read_exactly() {
        let toml = format!(
            "{ONE_ACCOUNT}\n[[accounts.min_available]]\nasset = \"ZUSD\"\namount = \"5000.25\"\n[[accounts.min_available]]\nasset = \"DOT\"\nfamily = \"staked\"\namount = 100\n"
        );
        let settings = Fixture::new().load(&toml, &[]).unwrap();
        let minimums = &settings.accounts[0].min_available;
        assert_eq!(
            minimums,
            &vec![
                MinAvailable {
                    asset: "USD".into(),
                    family: AssetFamily::Spot,
                    amount: Decimal::new(500025, 2)
                },
                MinAvailable {
                    asset: "DOT".into(),
                    family: AssetFamily::Staked,
                    amount: Decimal::new(100, 0)
                },
            ]
        );
    }

    #[test]
    fn unrelated_prefixed_variables_do_not_stop_the_exporter() {
        let env = [
            ("KRAKEN_EXPORTER_SERVICE_HOST", "10.0.0.1"),
            ("KRAKEN_EXPORTER_PORT", "tcp://10.0.0.1:9877"),
            ("KRAKEN_EXPORTER_PORT_9877_TCP_ADDR", "10.0.0.1"),
            ("KRAKEN_EXPORTER_POLL_INTERVALL", "5s"),
            ("KRAKEN_EXPORTER_REQUEST_TIMEOUT", "2s"),
        ];
        let settings = Fixture::new().load(ONE_ACCOUNT, &env).unwrap();
        assert_eq!(settings.request_timeout, Duration::from_secs(2));
        assert_eq!(settings.poll_interval, DEFAULT_POLL_INTERVAL);
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let settings = Fixture::new().load(ONE_ACCOUNT, &[]).unwrap();
        let debug = format!("{settings:?}");
        assert!(!debug.contains("KEY-abcd"), "{debug}");
        assert!(debug.contains("REDACTED"));
        let summary = settings.summary();
        assert!(
            summary.contains("main") && !summary.contains("KEY-abcd"),
            "{summary}"
        );
    }
}
