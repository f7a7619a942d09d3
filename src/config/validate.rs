//! Validation: raw values to typed settings, each problem one line that names the key and what to do.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::account::validate_account;
use super::environment::account_from_env;
use super::schema::RawSettings;
use super::{
    err, ConfigError, Settings, DEFAULT_API_URL, DEFAULT_MAX_ASSETS, DEFAULT_MAX_BACKOFF,
    DEFAULT_POLL_INTERVAL, DEFAULT_PRICE_INTERVAL, DEFAULT_REQUEST_TIMEOUT, MIN_POLL_INTERVAL,
    MIN_PRICE_INTERVAL,
};
use crate::kraken::assets::asset_label_of;
use crate::kraken::RebaseMultiplier;

/// The settings of a raw configuration, or its first problem.
pub(super) fn settings(
    raw: RawSettings,
    env: &BTreeMap<String, String>,
) -> Result<Settings, ConfigError> {
    let api_url = match raw.api_url {
        None => DEFAULT_API_URL.to_string(),
        Some(url) => validate_url("api_url", &url, DEFAULT_API_URL)?,
    };
    let poll_interval = bounded_duration(
        "poll_interval",
        raw.poll_interval,
        DEFAULT_POLL_INTERVAL,
        LONGEST_INTERVAL,
    )?;
    if poll_interval < MIN_POLL_INTERVAL {
        return Err(err(format!(
                "poll_interval = {:?} is below the minimum of 1s; Kraken's rate limits make faster polling pointless",
                humantime::format_duration(poll_interval).to_string()
            )));
    }
    let request_timeout = bounded_duration(
        "request_timeout",
        raw.request_timeout,
        DEFAULT_REQUEST_TIMEOUT,
        LONGEST_REQUEST_TIMEOUT,
    )?;
    let max_backoff = bounded_duration(
        "max_backoff",
        raw.max_backoff,
        DEFAULT_MAX_BACKOFF,
        LONGEST_INTERVAL,
    )?;
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
    let price_interval = bounded_duration(
        "price_interval",
        raw.price_interval,
        DEFAULT_PRICE_INTERVAL,
        LONGEST_INTERVAL,
    )?;
    if price_interval < MIN_PRICE_INTERVAL {
        return Err(err(format!(
                "price_interval ({}) is below the minimum of 5s; prices come from Kraken's public API, which limits call rates",
                humantime::format_duration(price_interval)
            )));
    }
    let max_assets = match raw.max_assets {
        None => DEFAULT_MAX_ASSETS,
        Some(n @ 1..=1_000_000) => n as usize,
        Some(n) => {
            return Err(err(format!(
                "max_assets ({n}) must be between 1 and 1000000; it bounds the rows of a BalanceEx answer (default {DEFAULT_MAX_ASSETS})"
            )))
        }
    };
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
    } else if let Some(set) = super::environment::account_variables_set(env) {
        tracing::warn!(
            "{set} ignored: the configuration file has [[accounts]], which replace the environment's account; remove the variable, or add the key to the file"
        );
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
    let mut futures_keys: BTreeMap<&str, &str> = BTreeMap::new();
    for account in &accounts {
        let Some(futures) = &account.futures else {
            continue;
        };
        let key = secrecy::ExposeSecret::expose_secret(&futures.api_key);
        if let Some(spot) = keys.get(key) {
            return Err(err(format!(
                "account {:?}: futures_api_key is the api_key of account {spot:?}; Kraken Futures keys are created on the futures site and are never spot keys: create one there (General API: Read Only)",
                account.name
            )));
        }
        if let Some(first) = futures_keys.insert(key, account.name.as_str()) {
            return Err(err(format!(
                "accounts {first:?} and {:?} use the same futures_api_key; a futures key pair belongs to one account: give each its own",
                account.name
            )));
        }
    }
    let futures_api_url = match raw.futures_api_url {
        None => crate::kraken::futures::DEFAULT_FUTURES_API_URL.to_string(),
        Some(url) => validate_url("futures_api_url", &url, "https://futures.kraken.com")?,
    };
    let rate_limit_tier = match raw.rate_limit_tier.as_deref().map(str::trim) {
        None => "starter".to_string(),
        Some(tier) => {
            let tier = tier.to_ascii_lowercase();
            if !["starter", "intermediate", "pro"].contains(&tier.as_str()) {
                return Err(err(format!(
                    "rate_limit_tier = {tier:?} is not a Kraken verification tier; use \"starter\" (the default), \"intermediate\" or \"pro\""
                )));
            }
            tier
        }
    };
    Ok(Settings {
        api_url,
        poll_interval,
        request_timeout,
        rebase_multiplier,
        max_backoff,
        stale_after,
        quote_currencies,
        price_interval,
        max_assets,
        futures_api_url,
        rate_limit_tier,
        accounts,
        options: raw.options,
    })
}

/// The currencies Kraken's spot pairs are quoted in (the `asset` label values: `XBT`, not `XXBT`),
/// the only ones valuation can price in.
pub const QUOTE_CURRENCIES: &[&str] = &[
    "USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD", "AED", "XBT", "ETH", "USDT", "USDC", "DAI",
    "PYUSD", "DOT", "POL",
];

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
        let code = asset_label_of(code);
        if !QUOTE_CURRENCIES.contains(&code.as_str()) {
            return Err(err(format!(
                "quote_currencies: {quote:?} is not a currency Kraken quotes prices in; use one of {}, or [] to turn valuation off",
                QUOTE_CURRENCIES.join(", ")
            )));
        }
        if quotes.contains(&code) {
            return Err(err(format!("quote_currencies lists {code:?} twice")));
        }
        quotes.push(code);
    }
    Ok(quotes)
}

/// Turns the config crate's messages into one line that names where the problem is and what to do.
pub(super) fn explain_config_error(message: &str, where_: &str) -> String {
    let message = &dotted_keys(message);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = rest.split(',').next().unwrap_or(rest).trim_matches('`');
        return format!(
            "unknown key {field:?} in {where_}; check the spelling against docs/configuration.md"
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

/// The config crate's key paths with a dot after each index: `accounts[0].margin`, not
/// `accounts[0]margin`.
fn dotted_keys(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 4);
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == ']' && chars.peek().is_some_and(|next| next.is_ascii_alphabetic()) {
            out.push('.');
        }
    }
    out
}

/// A base URL (`key` names it in errors; `example` is its default): http(s) with a host, no
/// user-info, query, fragment or path, and plain http only to loopback.
fn validate_url(key: &str, url: &str, example: &str) -> Result<String, ConfigError> {
    let trimmed = url.trim().trim_end_matches('/');
    // Never echo a URL that may carry a password: name it without its user-info part.
    let shown = redact_userinfo(trimmed);
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| {
        err(format!(
            "{key} = {shown:?} is not a valid URL ({e}); use e.g. \"{example}\""
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(err(format!(
            "{key} = {shown:?} must be an http or https URL with a host, e.g. \"{example}\""
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err(format!(
            "{key} = {shown:?} carries a user name or password; Kraken authenticates by API key, so remove the user-info part (it would be printed in logs)"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(err(format!(
            "{key} = {shown:?} must not contain a query or fragment; give the scheme and host only, e.g. \"{example}\""
        )));
    }
    if parsed.path() != "/" && !parsed.path().is_empty() {
        return Err(err(format!(
            "{key} = {shown:?} must not contain a path; the exporter appends each endpoint's path itself"
        )));
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) {
        return Err(err(format!(
            "{key} = {shown:?} is plain http to a host that is not this machine: the API key, signatures and balances would cross the network in clear text; use https (plain http is allowed to loopback addresses and localhost only, for local proxies; for a name under .localhost use 127.0.0.1)"
        )));
    }
    Ok(trimmed.to_string())
}

/// Whether the URL's host is a loopback address (`127.0.0.0/8`, `::1`) or `localhost` itself. A
/// name under `.localhost` is not taken: the resolver may ask DNS for it, and whoever answers would
/// receive the key and signatures in clear text.
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
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

/// Parses a humantime duration (`30s`, `1m 30s`); zero is never valid, and nothing longer than
/// [`LONGEST_DURATION`], so no schedule can overflow.
pub fn parse_duration(
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    bounded_duration(key, value, default, LONGEST_DURATION)
}

/// The longest duration any setting takes: 30 days.
pub const LONGEST_DURATION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// [`parse_duration`] with its own upper bound `longest`, named in the error.
pub(super) fn bounded_duration(
    key: &str,
    value: Option<String>,
    default: Duration,
    longest: Duration,
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
    if duration > longest {
        return Err(err(format!(
            "{key} = {text:?} is longer than the longest allowed, {}; use a shorter duration",
            humantime::format_duration(longest)
        )));
    }
    Ok(duration)
}

/// The longest `poll_interval`, `max_backoff` and `price_interval`: a day.
pub const LONGEST_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest `request_timeout`: five minutes (Kraken answers in well under a second).
const LONGEST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);
