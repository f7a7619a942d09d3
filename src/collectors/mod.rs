//! What each Kraken endpoint feeds into the metrics: one collector per endpoint, beside its request
//! and decoder in [`crate::kraken`], and the one table of endpoints, [`ENDPOINTS`] (as node_exporter's
//! collectors register in one table).
//!
//! An endpoint is its files (`kraken/<endpoint>.rs` for the request and the decoder, a collector
//! here with its families) plus one line in [`ENDPOINTS`]. Its entry says its Kraken method, the
//! permission the key needs, its cost on the rate counter, whether its outcome is the account's
//! `kraken_up`, how its families are registered (once per [`Metrics`]; they make the collector of
//! each account, [`EndpointFamilies`]) and which accounts poll it. Every family it registers is owned by its method
//! ([`Scope`](crate::metrics::Scope)), which is how the generic machinery clears them: data when it
//! goes stale, data and thresholds when an account stops polling the endpoint or goes away.
//!
//! The poller of an account walks its collectors in the table's order, one call at a time (one nonce
//! sequence per key). A collector fetches (the network part, outside any lock) and computes
//! everything it will export; then it applies that inside the account's
//! [`Metrics::update`](crate::metrics::Metrics::update), together with the poll's own bookkeeping, so
//! a scrape never sees half of a poll. The endpoint whose line says `decides_up` holds the account's
//! balances: its outcome is `kraken_up`, readiness and `kraken_backoff_seconds`. A failure of a later one never
//! touches the balances, `kraken_up` or the other endpoints; `kraken_endpoint_up{endpoint}` reports
//! each.

pub(crate) mod api_key;
mod balance_ex;
mod earn_allocations;
mod funding;
pub(crate) mod futures_accounts;
pub mod ledgers;
pub(crate) mod trade_balance;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use api_key::{describe as describe_key, Api, QUERY_ONLY};
pub use balance_ex::{
    threshold_assets, unlisted_threshold_assets, BalanceExCollector, BalanceFamilies,
    ThresholdAsset,
};
pub use futures_accounts::FuturesFamilies;

use crate::config::{AccountSettings, OptionSpec, Settings};
use crate::kraken::assets::AssetNames;
use crate::kraken::{KrakenClient, PollError};
use crate::metrics::{AccountSeries, Changes, Metrics, Scope};
use crate::valuation::prices::ValuationFamilies;
use crate::valuation::Valuation;

/// The future of one fetch: on success, how many items the answer had (for the log).
pub type Fetch<'a> = Pin<Box<dyn Future<Output = Result<usize, PollError>> + Send + 'a>>;

/// One endpoint's part of an account's poll.
pub trait Collector: Send {
    /// Kraken's method name (`BalanceEx`), for logs and the `endpoint` label.
    fn endpoint(&self) -> &'static str;
    /// The permission the key needs for this endpoint, named when Kraken refuses it.
    fn permission(&self) -> &'static str;
    /// Whether the endpoint is called with a key of its own (Kraken Futures), so a failure of the
    /// account's spot key does not keep it from being polled.
    fn own_key(&self) -> bool {
        false
    }
    /// What the operator should read of the last answer, one line each (the status page and
    /// `--once`): the key's permissions, for one.
    fn notes(&self) -> Vec<Note> {
        Vec::new()
    }
    /// What the operator can do about `err` (the log line's `hint`).
    fn hint(&self, err: &PollError) -> String {
        match err.reason {
            crate::kraken::ErrorReason::PermissionDenied => format!(
                "the key lacks the \"{}\" permission; add it to the key on Kraken (or turn this endpoint off)",
                self.permission()
            ),
            reason => reason.hint().to_string(),
        }
    }
    /// Exports what the account's configuration says about this endpoint (thresholds); called once
    /// when the configuration is applied.
    fn configure(&self, _account: &str, _metrics: &mut Changes<'_>) {}
    /// Calls the endpoint once and keeps what a successful answer will export.
    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a>;
    /// Sets the account's series from the last successful fetch.
    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>);
    /// Each configured minimum of this endpoint with the figure its last successful call compared
    /// with it (for the status page).
    fn comparisons(&self) -> Vec<Comparison> {
        Vec::new()
    }
    /// Removes the account's data series of this endpoint (they went stale); thresholds stay.
    fn clear(&mut self, account: &str, metrics: &mut Changes<'_>) {
        metrics.clear_endpoint(account, self.endpoint(), false);
    }
}

/// A line an operator should read about an endpoint's last answer (the status page, `--once`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    /// Something to act on (a key that can move funds): shown in red, printed as a warning.
    pub alarming: bool,
}

/// A configured minimum and the figure it is compared with (`spendable XBT`: 0.7 against 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// What is compared, as the operator names it: `spendable XBT`, `available EUR (spot)`.
    pub what: String,
    pub figure: rust_decimal::Decimal,
    pub minimum: rust_decimal::Decimal,
}

impl Comparison {
    /// `what`'s figure against its minimum, when there are both (a ratio that exists only while
    /// positions are open, a minimum that is optional).
    pub fn of(
        what: &str,
        figure: Option<rust_decimal::Decimal>,
        minimum: Option<rust_decimal::Decimal>,
    ) -> Vec<Self> {
        match (figure, minimum) {
            (Some(figure), Some(minimum)) => vec![Self {
                what: what.to_string(),
                figure,
                minimum,
            }],
            _ => Vec::new(),
        }
    }

    /// Whether the figure is below its minimum (what pages).
    pub fn below(&self) -> bool {
        self.figure < self.minimum
    }

    /// How much room is left: the figure over its minimum (`None` for a minimum of 0, which only a
    /// negative figure is below).
    pub fn headroom(&self) -> Option<rust_decimal::Decimal> {
        self.figure.checked_div(self.minimum)
    }
}

/// An endpoint's families as registered on one [`Metrics`]: they make the endpoint's collector of
/// each account, which fills them.
pub trait EndpointFamilies: Send + Sync {
    /// The account's collector (asked only when [`Endpoint::polls`] says the account polls it).
    fn collector(
        self: Arc<Self>,
        account: &AccountSettings,
        context: &Context<'_>,
    ) -> Option<Box<dyn Collector>>;
}

/// One line of the table of endpoints.
pub struct Endpoint {
    /// Kraken's method name, the `endpoint` label and the owner of the endpoint's families.
    pub method: &'static str,
    /// The permission the key needs, named in the log when Kraken refuses a call.
    pub permission: &'static str,
    /// The most points one poll costs on the spot key's rate counter (0: another key and budget): 1
    /// for one call of most endpoints, 2 a page of `Ledgers` times the pages a poll may read.
    pub cost: fn(&Settings) -> u32,
    /// Whether its outcome is the account's `kraken_up`, readiness and backoff (the balances; one
    /// line of the table, which every account polls).
    pub decides_up: bool,
    /// Registers the endpoint's families on the metrics, once per [`Metrics`].
    pub register: fn(&Metrics) -> Arc<dyn EndpointFamilies>,
    /// Whether the account's configuration polls this endpoint.
    pub polls: fn(&AccountSettings) -> bool,
    /// How often it is called ([`every_poll`]: the account's `poll_interval`).
    pub interval: fn(&Settings) -> std::time::Duration,
    /// Its options in the configuration: the keys it owns and their check.
    pub options: OptionSpec,
    /// Its configured minimums as the summary shows them (`margin level >= 2.0`).
    pub thresholds: fn(&AccountSettings) -> Vec<String>,
}

/// The options of every endpoint, for loading the configuration.
pub fn option_specs() -> Vec<OptionSpec> {
    ENDPOINTS.iter().map(|endpoint| endpoint.options).collect()
}

/// Loads the settings with every endpoint's options checked: the one way the exporter reads its
/// configuration (start, `--check-config`, reload).
pub fn load_settings(
    file: Option<&std::path::Path>,
    env: std::collections::BTreeMap<String, String>,
) -> Result<Settings, crate::config::ConfigError> {
    Settings::load(file, env, &option_specs())
}

/// The interval of most endpoints: `poll_interval`.
pub fn every_poll(settings: &Settings) -> std::time::Duration {
    settings.poll_interval
}

/// An account's collector of one endpoint, with what its table line says of it.
pub struct Polled {
    pub collector: Box<dyn Collector>,
    /// Its outcome is the account's `kraken_up` ([`Endpoint::decides_up`]).
    pub decides_up: bool,
    /// How often it is called ([`Endpoint::interval`]).
    pub interval: std::time::Duration,
}

/// Every endpoint, in the order an account polls them. The first is the account's balances: every
/// account polls it.
pub const ENDPOINTS: &[Endpoint] = &[
    balance_ex::ENDPOINT,
    trade_balance::ENDPOINT,
    earn_allocations::ENDPOINT,
    ledgers::ENDPOINT,
    funding::WITHDRAWALS,
    funding::DEPOSITS,
    futures_accounts::ENDPOINT,
    api_key::SPOT,
    api_key::FUTURES,
];

/// The families of every endpoint and of the valuation, registered once on one [`Metrics`] and kept
/// across reloads.
pub struct Registered {
    endpoints: Vec<Arc<dyn EndpointFamilies>>,
    pub valuation: Arc<ValuationFamilies>,
}

impl Registered {
    /// Registers every family: the endpoints' in the table's order, then the valuation's.
    pub fn on(metrics: &Metrics) -> Self {
        let endpoints = ENDPOINTS
            .iter()
            .map(|endpoint| (endpoint.register)(metrics))
            .collect();
        // What an alert on `kraken_endpoint_up` joins to name the permission a key lacks.
        let info = AccountSeries::register(
            metrics,
            Scope::Global,
            "kraken_endpoint_info",
            "Every Kraken endpoint the exporter knows, with the permission its key needs (always 1).",
            &["endpoint", "permission"],
        );
        let rows: Vec<(Vec<String>, f64)> = ENDPOINTS
            .iter()
            .map(|e| (vec![e.method.to_string(), e.permission.to_string()], 1.0))
            .collect();
        metrics.update(|m| info.replace(m, "", &rows));
        Self {
            endpoints,
            valuation: Arc::new(ValuationFamilies::register(metrics)),
        }
    }
}

/// What the collectors of every account share: asset names learnt from Kraken, the valuation's
/// families and, when valuation is on, the prices.
#[derive(Clone)]
pub struct Shared {
    pub names: Arc<AssetNames>,
    pub valuation: Option<Arc<Valuation>>,
    pub valuation_families: Arc<ValuationFamilies>,
}

/// What a collector is made from besides its account: the settings every account shares, the
/// account's keys with their nonce sequences (kept across reloads by the key book of
/// `polling::running`), and what the collectors of every account share.
pub struct Context<'a> {
    /// The configuration's HTTP client, for endpoints with a client of their own.
    pub http: &'a reqwest::Client,
    /// The validated settings (URLs, limits, intervals).
    pub settings: &'a Settings,
    /// The nonce sequence of the account's futures key (kept across reloads).
    pub futures_nonce: &'a crate::kraken::client::NonceSequence,
    pub shared: &'a Shared,
}

impl Context<'_> {
    /// The client of the account's Kraken Futures key, continuing the key's nonce sequence: every
    /// endpoint called with that key gets it here, so they share one sequence.
    pub fn futures_client(
        &self,
        account: &AccountSettings,
    ) -> Option<crate::kraken::futures::FuturesClient> {
        let futures = account.futures.as_ref()?;
        Some(crate::kraken::futures::FuturesClient::new(
            self.http.clone(),
            &self.settings.futures_api_url,
            futures.api_key.clone(),
            futures.api_secret.clone(),
            self.futures_nonce.clone(),
        ))
    }
}

/// The collectors of one account, in the order they are polled: every line of [`ENDPOINTS`] whose
/// configuration asks for it.
pub fn for_account(
    account: &AccountSettings,
    context: &Context<'_>,
    registered: &Registered,
) -> Vec<Polled> {
    ENDPOINTS
        .iter()
        .zip(&registered.endpoints)
        .filter(|(endpoint, _)| (endpoint.polls)(account))
        .filter_map(|(endpoint, families)| {
            Some(Polled {
                collector: Arc::clone(families).collector(account, context)?,
                decides_up: endpoint.decides_up,
                interval: (endpoint.interval)(context.settings),
            })
        })
        .collect()
}

/// The endpoints an account polls, in order.
pub fn polled_by(account: &AccountSettings) -> impl Iterator<Item = &'static Endpoint> + '_ {
    ENDPOINTS
        .iter()
        .filter(|endpoint| (endpoint.polls)(account))
}

/// Kraken's spot API rate counter per tier: the points it refills a second (its decay).
/// Every private call of a key costs its endpoint's [`Endpoint::cost`].
pub const TIER_DECAY_PER_SECOND: &[(&str, f64)] =
    &[("starter", 0.33), ("intermediate", 0.5), ("pro", 1.0)];

/// The points one poll of an account costs its spot key (endpoints called every `poll_interval`).
fn spot_points(account: &AccountSettings, settings: &Settings) -> u32 {
    polled_by(account)
        .filter(|endpoint| (endpoint.interval)(settings) == settings.poll_interval)
        .map(|endpoint| (endpoint.cost)(settings))
        .sum()
}

/// The points an account's calls cost its spot key a second: each endpoint's cost over its interval.
pub fn spot_cost_per_second(account: &AccountSettings, settings: &Settings) -> f64 {
    polled_by(account)
        .map(|endpoint| {
            f64::from((endpoint.cost)(settings)) / (endpoint.interval)(settings).as_secs_f64()
        })
        .sum()
}

/// The most accounts one instance has been measured to serve (`bench/scale.sh`, BENCHMARKS.md).
pub const MEASURED_ACCOUNTS: usize = 1_000;

/// One warning per account whose polls cost its spot key more a second than the `tier`'s counter
/// refills (the counter then runs dry and Kraken refuses calls with `EAPI:Rate limit exceeded`), and
/// one when the configuration has more accounts than one instance has been measured to serve.
pub fn rate_warnings(settings: &crate::config::Settings) -> Vec<String> {
    let decay = TIER_DECAY_PER_SECOND
        .iter()
        .find(|(tier, _)| *tier == settings.rate_limit_tier)
        .map_or(0.33, |(_, decay)| *decay);
    let past_measured = (settings.accounts.len() > MEASURED_ACCOUNTS).then(|| {
        format!(
            "{} accounts is more than the {MEASURED_ACCOUNTS} one instance has been measured to serve on 2 cores (docs/performance.md); polls may fall behind their schedule: split the accounts over several instances",
            settings.accounts.len()
        )
    });
    past_measured
        .into_iter()
        .chain(settings.accounts.iter().filter_map(|account| {
            let points = spot_points(account, settings);
            let cost = spot_cost_per_second(account, settings);
            (cost > decay).then(|| {
                format!(
                    "account {:?}: spot calls cost {cost:.2} points/s ({points} every {}, plus the endpoints on intervals of their own), more than the {} tier's counter refills ({decay}/s); Kraken will refuse calls with EAPI:Rate limit exceeded. Raise poll_interval to at least {}s, or set rate_limit_tier if the key's tier is higher",
                    account.name,
                    humantime::format_duration(settings.poll_interval),
                    settings.rate_limit_tier,
                    least_poll_interval(account, settings, decay),
                )
            })
        }))
        .collect()
}

/// The shortest whole `poll_interval` in seconds at which the account's calls stay within `decay`
/// points a second, given what its other endpoints (those with an interval of their own) cost.
fn least_poll_interval(account: &AccountSettings, settings: &Settings, decay: f64) -> f64 {
    let points = f64::from(spot_points(account, settings));
    let others =
        spot_cost_per_second(account, settings) - points / settings.poll_interval.as_secs_f64();
    let room = decay - others;
    if room <= 0.0 {
        return f64::INFINITY;
    }
    (points / room).ceil()
}

/// Logs each of [`rate_warnings`] as a warning (at start and after every reload).
pub fn log_rate_warnings(settings: &crate::config::Settings) {
    for warning in rate_warnings(settings) {
        tracing::warn!("{warning}");
    }
}

/// What an account's configuration turns on, without secrets: the endpoints it polls, each
/// threshold as it is compared (`XBT >= 0.5`) and its keys by their last four characters.
pub fn account_summary(account: &AccountSettings) -> String {
    let endpoints: Vec<&str> = polled_by(account).map(|endpoint| endpoint.method).collect();
    let futures_key = account.futures.as_ref().map_or(String::new(), |f| {
        format!(
            ", futures key {}",
            key_hint(secrecy::ExposeSecret::expose_secret(&f.api_key))
        )
    });
    format!(
        "account {:?}: endpoints [{}], thresholds: {}; key {}{futures_key}{}",
        account.name,
        endpoints.join(", "),
        thresholds_summary(account),
        key_hint(secrecy::ExposeSecret::expose_secret(&account.api_key)),
        if account.api_otp.is_some() {
            ", 2FA password set"
        } else {
            ""
        },
    )
}

/// Every threshold of an account as it is compared: `spendable XBT >= 0.5, USD >= 1000; available
/// DOT (staked) >= 100; margin level >= 2.0; futures margin ratio >= 3`, or `none`.
fn thresholds_summary(account: &AccountSettings) -> String {
    let mut kinds = Vec::new();
    if !account.min_spendable.is_empty() {
        let each: Vec<String> = account
            .min_spendable
            .iter()
            .map(|m| format!("{} >= {}", m.asset, m.amount))
            .collect();
        kinds.push(format!("spendable {}", each.join(", ")));
    }
    if !account.min_available.is_empty() {
        let each: Vec<String> = account
            .min_available
            .iter()
            .map(|m| format!("{} ({}) >= {}", m.asset, m.family.label(), m.amount))
            .collect();
        kinds.push(format!("available {}", each.join(", ")));
    }
    kinds.extend(polled_by(account).flat_map(|endpoint| (endpoint.thresholds)(account)));
    if kinds.is_empty() {
        "none (nothing pages on low funds)".to_string()
    } else {
        kinds.join("; ")
    }
}

/// An API key as its last four characters (`...Ab3d`), enough to tell keys apart in a log and
/// useless to anyone else; a key of 8 characters or fewer as `****`.
pub fn key_hint(api_key: &str) -> String {
    let chars: Vec<char> = api_key.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("...{tail}")
}

#[cfg(test)]
mod options_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use std::time::Duration;

    fn account(margin: bool, earn: bool) -> AccountSettings {
        let mut account = AccountSettings::new("trading", "KEY-abcdefgh-1234", vec![1; 64]);
        account.options = account.options.with("margin", margin).with("earn", earn);
        account
    }

    #[test]
    fn one_line_of_the_table_decides_kraken_up_and_every_account_polls_it() {
        let deciding: Vec<&Endpoint> = ENDPOINTS.iter().filter(|e| e.decides_up).collect();
        assert_eq!(deciding.len(), 1);
        assert_eq!(deciding[0].method, "BalanceEx");
        assert!((deciding[0].polls)(&account(false, false)));
    }

    #[test]
    fn calls_past_the_tiers_decay_are_warned_about_once_per_account() {
        let mut settings =
            Settings::with_defaults("https://api.kraken.com", vec![account(true, true)]);
        // Three calls every 30 s and the key's own info every 15 minutes: 0.1/s and 1/900 s, well
        // under Starter's 0.33/s.
        assert!(rate_warnings(&settings).is_empty());
        let cost = spot_cost_per_second(&settings.accounts[0], &settings);
        assert!((cost - (0.1 + 1.0 / 900.0)).abs() < 1e-9, "{cost}");
        settings.options.set("key_info_interval", "1m");
        let cost = spot_cost_per_second(&settings.accounts[0], &settings);
        assert!((cost - (0.1 + 1.0 / 60.0)).abs() < 1e-9, "{cost}");
        settings.accounts[0].options.set("key_info", false);
        let cost = spot_cost_per_second(&settings.accounts[0], &settings);
        assert!((cost - 0.1).abs() < 1e-9, "{cost}");
        settings.accounts[0].options.set("key_info", true);
        settings.options = crate::config::Options::default();
        // Three calls a second: past every tier.
        settings.poll_interval = Duration::from_secs(1);
        let warnings = rate_warnings(&settings);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("3.00 points/s")
                && warnings[0].contains("starter")
                && warnings[0].contains("at least 10s"),
            "{}",
            warnings[0]
        );
        // Every 5 s: 0.6/s warns on Starter and Intermediate, not on Pro.
        settings.poll_interval = Duration::from_secs(5);
        for (tier, warned) in [("starter", true), ("intermediate", true), ("pro", false)] {
            settings.rate_limit_tier = tier.to_string();
            assert_eq!(!rate_warnings(&settings).is_empty(), warned, "{tier}");
        }
        // Past the measured number of accounts (at a slow interval: no rate warning).
        let mut many = settings.clone();
        many.poll_interval = Duration::from_secs(600);
        many.accounts = (0..=MEASURED_ACCOUNTS)
            .map(|i| AccountSettings::new(format!("a{i}"), format!("KEY-{i}"), vec![1; 64]))
            .collect();
        let warnings = rate_warnings(&many);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("1001 accounts is more than the 1000"),
            "{}",
            warnings[0]
        );
        many.accounts.pop();
        assert!(rate_warnings(&many).is_empty());
        // BalanceEx alone every 5 s is 0.2/s: fine on Starter.
        settings.rate_limit_tier = "starter".to_string();
        settings.accounts = vec![account(false, false)];
        assert!(rate_warnings(&settings).is_empty());
    }

    #[test]
    fn the_account_summary_names_what_is_on_and_never_the_key() {
        let summary = account_summary(&account(true, false));
        assert!(
            summary.contains("endpoints [BalanceEx, TradeBalance, GetApiKeyInfo]"),
            "{summary}"
        );
        assert!(
            summary.contains("thresholds: none (nothing pages on low funds)"),
            "{summary}"
        );
        let mut with_thresholds = account(true, false);
        with_thresholds.min_spendable = vec![
            crate::config::MinSpendable {
                asset: "XBT".into(),
                amount: rust_decimal::Decimal::new(5, 1),
            },
            crate::config::MinSpendable {
                asset: "USD".into(),
                amount: rust_decimal::Decimal::new(1000, 0),
            },
        ];
        with_thresholds.min_available = vec![crate::config::MinAvailable {
            asset: "DOT".into(),
            family: crate::kraken::AssetFamily::Staked,
            amount: rust_decimal::Decimal::new(100, 0),
        }];
        with_thresholds.options.set("min_margin_level", "2.0");
        let summary = account_summary(&with_thresholds);
        assert!(
            summary.contains(
                "thresholds: spendable XBT >= 0.5, USD >= 1000; available DOT (staked) >= 100; margin level >= 2.0;"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("key ...1234") && !summary.contains("KEY-abcdefgh"),
            "{summary}"
        );
    }
}
