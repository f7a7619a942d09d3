//! Every metric family the exporter serves, and the one place that publishes a new exposition.
//!
//! The balance and value families (thousands of series) are rendered by hand per account in
//! `families` when that account's poll succeeds; everything else (per-account health, counters,
//! histograms, build info, thresholds) lives in a `prometheus` registry.
//!
//! **Publishing has one owner.** State changes only through [`Metrics::update`], whose closure gets a
//! [`Changes`] handle (the only type with setters); when the closure returns, `update` renders the
//! registry, joins it with the balance chunks (plain and gzip) and stores the result that `/metrics`
//! serves. Updates are serialised, so a render never overwrites a newer one, and no caller can change
//! a value and forget to publish it. Process metrics (CPU, memory, file descriptors) change on their
//! own; they live in a second, small registry that is re-rendered when a scrape finds it older than
//! [`PROCESS_REFRESH`], so even a flood of scrapes reads `/proc` at most once a second.

mod families;
mod series;

use crate::sync::lock;

pub use families::to_f64;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};
use rust_decimal::Decimal;

use crate::config::{MinAvailable, MinSpendable};
use crate::exposition::{Encoded, GaugeFamily};
use crate::kraken::earn_allocations::Allocation;
use crate::kraken::trade_balance::TradeBalance;
use crate::kraken::{AssetBalance, AssetLabels, ErrorReason};
use crate::valuation::AccountValues;
use families::{BALANCE_FAMILIES, SPENDABLE_FAMILY, VALUE_FAMILIES};
use series::AccountSeries;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const BALANCE_LABELS: &[&str] = &["account", "asset", "family"];

/// An account's exported thresholds: minimum available per row, minimum spendable per asset.
type Thresholds = (Vec<MinAvailable>, Vec<MinSpendable>);

/// A `TradeBalance` family: name, help, and the figure it exports.
type MarginFamily = (&'static str, &'static str, fn(&TradeBalance) -> Decimal);

/// The `TradeBalance` families with the labels `{account, quote}`.
const MARGIN_FAMILIES: &[MarginFamily] = &[
    (
        "kraken_margin_equivalent_balance",
        "Equivalent balance of all currencies (TradeBalance eb), in the quote currency.",
        |t| t.equivalent_balance,
    ),
    (
        "kraken_margin_trade_balance",
        "Trade balance of the equity currencies (TradeBalance tb), in the quote currency.",
        |t| t.trade_balance,
    ),
    (
        "kraken_margin_used",
        "Margin used by open positions (TradeBalance m), in the quote currency.",
        |t| t.margin_used,
    ),
    (
        "kraken_margin_unrealized_pnl",
        "Unrealized net profit and loss of open positions (TradeBalance n), in the quote currency.",
        |t| t.unrealized_pnl,
    ),
    (
        "kraken_margin_cost_basis",
        "Cost basis of open positions (TradeBalance c), in the quote currency.",
        |t| t.cost_basis,
    ),
    (
        "kraken_margin_positions_value",
        "Current valuation of open positions (TradeBalance v), in the quote currency.",
        |t| t.positions_value,
    ),
    (
        "kraken_margin_equity",
        "Equity, trade balance plus unrealized P&L (TradeBalance e), in the quote currency.",
        |t| t.equity,
    ),
    (
        "kraken_margin_free",
        "Free margin, equity minus margin used (TradeBalance mf), in the quote currency.",
        |t| t.free_margin,
    ),
];

/// The label values of a family without labels.
const NO_LABELS: &[&str] = &[];

/// Poll duration buckets in seconds: Kraken usually answers in 0.1-0.5 s; the top buckets catch timeouts.
const POLL_DURATION_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The registry, the metric families, and the last rendered exposition.
pub struct Metrics {
    registry: Registry,
    process_registry: Registry,
    /// `# HELP`/`# TYPE` of `kraken_spendable`.
    spendable_headers: Vec<Encoded>,
    /// Per account, the rendered lines of `kraken_spendable`.
    spendable_chunks: Mutex<BTreeMap<String, Vec<Encoded>>>,
    /// `# HELP`/`# TYPE` of each of [`BALANCE_FAMILIES`].
    balance_headers: Vec<Encoded>,
    /// Per account, the rendered lines of each of [`BALANCE_FAMILIES`].
    balance_chunks: Mutex<BTreeMap<String, Vec<Encoded>>>,
    /// `# HELP`/`# TYPE` of each of [`VALUE_FAMILIES`].
    value_headers: Vec<Encoded>,
    /// Per account, the rendered lines of each of [`VALUE_FAMILIES`].
    value_chunks: Mutex<BTreeMap<String, Vec<Encoded>>>,
    asset_price: GaugeVec,
    unpriced: GaugeVec,
    prices_up: GaugeVec,
    prices_last_success: GaugeVec,
    /// The (asset, quote) pairs of `asset_price` currently exported, to remove those that vanish.
    exported_prices: Mutex<std::collections::BTreeSet<(String, String)>>,
    available_min: GaugeVec,
    spendable_min: GaugeVec,
    up: GaugeVec,
    last_success: GaugeVec,
    backoff: GaugeVec,
    poll_duration: HistogramVec,
    polls: IntCounterVec,
    poll_errors: IntCounterVec,
    exposition: RwLock<Exposition>,
    /// Held while a change is applied and published: one update at a time, in order.
    publishing: Mutex<()>,
    /// The configured accounts (their per-account series exist).
    accounts: Mutex<std::collections::BTreeSet<String>>,
    /// Per account, the thresholds currently exported, so a reload can remove those that went.
    thresholds: Mutex<BTreeMap<String, Thresholds>>,
    reload_successful: GaugeVec,
    reload_success_time: GaugeVec,
    /// One per [`MARGIN_FAMILIES`] entry.
    margin: Vec<AccountSeries>,
    margin_level: AccountSeries,
    margin_level_min: AccountSeries,
    earn_allocated: AccountSeries,
    earn_next_release: AccountSeries,
    earn_rewarded: AccountSeries,
    endpoint_up: AccountSeries,
    endpoint_errors: IntCounterVec,
    /// Per account, the endpoints it polls (their health series exist).
    endpoints: Mutex<BTreeMap<String, Vec<&'static str>>>,
}

/// How old the process metrics in a scrape may be.
pub const PROCESS_REFRESH: Duration = Duration::from_secs(1);

/// What scrapes are served: the published parts and the process part.
#[derive(Default)]
struct Exposition {
    /// Family headers, balance chunks and the rendered registry, in exposition order; shared, not joined,
    /// so the text exists once in memory.
    published: Arc<[Encoded]>,
    process: Encoded,
    process_rendered_at: Option<Instant>,
}

/// The body of one scrape: the published parts, then the process part.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub published: Arc<[Encoded]>,
    pub process: Encoded,
}

impl Scrape {
    /// The plain-text chunks, in order.
    pub fn plain(&self) -> Vec<Bytes> {
        self.parts().map(|part| part.plain().clone()).collect()
    }

    /// The gzip chunks, in order (one gzip member each).
    pub fn gzip(&self) -> Vec<Bytes> {
        self.parts().map(|part| part.gzip().clone()).collect()
    }

    fn parts(&self) -> impl Iterator<Item = &Encoded> {
        self.published.iter().chain(std::iter::once(&self.process))
    }

    pub fn text(&self) -> String {
        self.plain()
            .iter()
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect()
    }
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let gauge = GaugeVec::new(Opts::new(name, help), labels)
        .expect("metric names, help and labels are static and valid");
    registry
        .register(Box::new(gauge.clone()))
        .expect("each metric family is registered once");
    gauge
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .expect("metric names, help and labels are static and valid");
    registry
        .register(Box::new(counter.clone()))
        .expect("each metric family is registered once");
    counter
}

impl Metrics {
    /// Creates every family and pre-creates the per-account series (up = 0, error counters at 0), so
    /// `rate()` and `absent()` work from the first scrape.
    pub fn new<S: AsRef<str>>(accounts: &[S]) -> Self {
        let registry = Registry::new();
        let process_registry = Registry::new();
        #[cfg(target_os = "linux")]
        process_registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("the process collector is registered once");

        let build_info = gauge_vec(
            &registry,
            "kraken_exporter_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustc version of kraken_exporter.",
            &["version", "revision", "rustc"],
        );
        build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                env!("BUILD_GIT_REVISION"),
                env!("BUILD_RUSTC_VERSION"),
            ])
            .set(1.0);

        let metrics = Self {
            available_min: gauge_vec(&registry, "kraken_balance_available_min", "Configured minimum available amount of the asset (min_available); alert when kraken_balance_available falls below it.", BALANCE_LABELS),
            spendable_min: gauge_vec(&registry, "kraken_spendable_min", "Configured minimum spendable amount of the asset (min_spendable); alert when kraken_spendable falls below it.", &["account", "asset"]),
            up: gauge_vec(&registry, "kraken_up", "1 if the last BalanceEx poll of the account succeeded, 0 if it failed or none has finished yet.", &["account"]),
            last_success: gauge_vec(&registry, "kraken_last_success_timestamp_seconds", "Unix time of the last successful BalanceEx poll of the account (0 before the first).", &["account"]),
            backoff: gauge_vec(&registry, "kraken_backoff_seconds", "Seconds the account's poller waits before its next attempt because of failures (0 while polls succeed).", &["account"]),
            poll_duration: {
                let histogram = HistogramVec::new(
                    HistogramOpts::new("kraken_poll_duration_seconds", "Duration of BalanceEx polls, successful or not, in seconds.")
                        .buckets(POLL_DURATION_BUCKETS.to_vec()),
                    &["account"],
                )
                .expect("histogram options are static and valid");
                registry.register(Box::new(histogram.clone())).expect("each metric family is registered once");
                histogram
            },
            polls: counter_vec(&registry, "kraken_polls_total", "BalanceEx polls attempted, successful or not.", &["account"]),
            poll_errors: counter_vec(&registry, "kraken_poll_errors_total", "Failed BalanceEx polls by reason (timeout, http, decode, invalid_key, invalid_signature, invalid_nonce, permission_denied, rate_limited, lockout, unavailable, api_error).", &["account", "reason"]),
            spendable_headers: vec![SPENDABLE_FAMILY.header()],
            spendable_chunks: Mutex::new(BTreeMap::new()),
            balance_headers: BALANCE_FAMILIES.iter().map(|f| f.family.header()).collect(),
            balance_chunks: Mutex::new(BTreeMap::new()),
            value_headers: VALUE_FAMILIES.iter().map(GaugeFamily::header).collect(),
            value_chunks: Mutex::new(BTreeMap::new()),
            asset_price: gauge_vec(&registry, "kraken_asset_price", "Price of one unit of the asset in the quote currency, from Kraken's last trades (ETH2 at ETH's price; see the README).", &["asset", "quote"]),
            unpriced: gauge_vec(&registry, "kraken_unpriced_assets", "Balances of the account (asset and family) without a price in at least one quote currency; they get no value series.", &["account"]),
            prices_up: gauge_vec(&registry, "kraken_prices_up", "1 if the last refresh of prices from Kraken's public API succeeded, 0 if it failed.", &[]),
            prices_last_success: gauge_vec(&registry, "kraken_prices_last_success_timestamp_seconds", "Unix time of the last successful refresh of prices.", &[]),
            exported_prices: Mutex::new(std::collections::BTreeSet::new()),
            exposition: RwLock::new(Exposition::default()),
            publishing: Mutex::new(()),
            accounts: Mutex::new(std::collections::BTreeSet::new()),
            thresholds: Mutex::new(BTreeMap::new()),
            reload_successful: gauge_vec(&registry, "kraken_exporter_config_last_reload_successful", "1 if the last configuration reload (or the start) succeeded, 0 if it failed.", &[]),
            reload_success_time: gauge_vec(&registry, "kraken_exporter_config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration reload (or of the start).", &[]),
            margin: MARGIN_FAMILIES
                .iter()
                .map(|(name, help, _)| AccountSeries::new(gauge_vec(&registry, name, help, &["account", "quote"])))
                .collect(),
            margin_level: AccountSeries::new(gauge_vec(&registry, "kraken_margin_level_ratio", "Margin level as a ratio, equity / margin used (TradeBalance ml / 100); absent while no position is open. Kraken margin-calls and liquidates as it falls.", &["account"])),
            margin_level_min: AccountSeries::new(gauge_vec(&registry, "kraken_margin_level_min_ratio", "Configured minimum margin level as a ratio (min_margin_level); alert when kraken_margin_level_ratio falls below it.", &["account"])),
            earn_allocated: AccountSeries::new(gauge_vec(&registry, "kraken_earn_allocated", "Amount allocated to an Earn strategy in each state Kraken reports (total, bonding, allocated, exit_queue, unbonding), in units of the asset.", &["account", "asset", "strategy", "state"])),
            earn_next_release: AccountSeries::new(gauge_vec(&registry, "kraken_earn_next_release_timestamp_seconds", "Unix time when the earliest unbonding or exit-queue tranche of an Earn strategy becomes spendable; absent when nothing is on its way out.", &["account", "asset", "strategy"])),
            earn_rewarded: AccountSeries::new(gauge_vec(&registry, "kraken_earn_rewarded", "Total rewarded by an Earn strategy, in units of the asset.", &["account", "asset", "strategy"])),
            endpoint_up: AccountSeries::new(gauge_vec(&registry, "kraken_endpoint_up", "1 if the last call of the account to this Kraken endpoint (BalanceEx, TradeBalance, Earn/Allocations) succeeded, 0 if it failed or none has finished yet.", &["account", "endpoint"])),
            endpoint_errors: counter_vec(&registry, "kraken_endpoint_errors_total", "Failed calls by account, Kraken endpoint and reason.", &["account", "endpoint", "reason"]),
            endpoints: Mutex::new(BTreeMap::new()),
            registry,
            process_registry,
        };
        metrics
            .reload_successful
            .with_label_values(NO_LABELS)
            .set(1.0);
        metrics
            .reload_success_time
            .with_label_values(NO_LABELS)
            .set(unix_seconds(SystemTime::now()));
        for account in accounts {
            metrics.add_account(account.as_ref());
        }
        metrics.publish();
        metrics
    }

    /// Pre-creates an account's per-account series (up = 0, error counters at 0), so `rate()` and
    /// `absent()` work from the first scrape. Series that exist already are left as they are.
    fn add_account(&self, account: &str) {
        if !lock(&self.accounts).insert(account.to_string()) {
            return;
        }
        self.up.with_label_values(&[account]).set(0.0);
        self.last_success.with_label_values(&[account]).set(0.0);
        self.backoff.with_label_values(&[account]).set(0.0);
        self.polls.with_label_values(&[account]);
        self.poll_duration.with_label_values(&[account]);
        for reason in ErrorReason::ALL {
            self.poll_errors
                .with_label_values(&[account, reason.as_str()]);
        }
    }

    /// Applies `change` and publishes the result, as one step: the only way to change what is served.
    pub fn update<R>(&self, change: impl FnOnce(&Changes<'_>) -> R) -> R {
        let _publishing = lock(&self.publishing);
        let result = change(&Changes { metrics: self });
        self.publish();
        result
    }
}

/// The setters of [`Metrics`], handed out by [`Metrics::update`], which publishes once they are done.
pub struct Changes<'a> {
    metrics: &'a Metrics,
}

impl std::ops::Deref for Changes<'_> {
    type Target = Metrics;

    fn deref(&self) -> &Metrics {
        self.metrics
    }
}

impl Changes<'_> {
    /// Exports an account's configured thresholds, minimum available amounts per row and minimum
    /// spendable amounts per asset, replacing those exported before.
    pub fn set_minimums(
        &self,
        account: &str,
        min_available: &[MinAvailable],
        min_spendable: &[MinSpendable],
    ) {
        self.remove_minimums(account);
        for minimum in min_available {
            self.available_min
                .with_label_values(&[account, minimum.asset.as_str(), minimum.family.label()])
                .set(to_f64(minimum.amount));
        }
        for minimum in min_spendable {
            self.spendable_min
                .with_label_values(&[account, minimum.asset.as_str()])
                .set(to_f64(minimum.amount));
        }
        lock(&self.thresholds).insert(
            account.to_string(),
            (min_available.to_vec(), min_spendable.to_vec()),
        );
    }

    fn remove_minimums(&self, account: &str) {
        let Some((min_available, min_spendable)) = lock(&self.thresholds).remove(account) else {
            return;
        };
        for minimum in min_available {
            // Present since it was set; nothing to undo if it is not.
            let _ = self.available_min.remove_label_values(&[
                account,
                minimum.asset.as_str(),
                minimum.family.label(),
            ]);
        }
        for minimum in min_spendable {
            let _ = self
                .spendable_min
                .remove_label_values(&[account, minimum.asset.as_str()]);
        }
    }

    /// Makes the configured accounts exactly `accounts`: new ones get their series pre-created,
    /// removed ones lose every series (balances, values, health, counters, thresholds).
    pub fn set_accounts<S: AsRef<str>>(&self, accounts: &[S]) {
        let wanted: std::collections::BTreeSet<String> =
            accounts.iter().map(|a| a.as_ref().to_string()).collect();
        let gone: Vec<String> = lock(&self.accounts).difference(&wanted).cloned().collect();
        for account in &gone {
            self.remove_account(account);
        }
        for account in &wanted {
            self.add_account(account);
        }
    }

    fn remove_account(&self, account: &str) {
        self.clear_balances(account);
        lock(&self.balance_chunks).remove(account);
        lock(&self.spendable_chunks).remove(account);
        lock(&self.value_chunks).remove(account);
        self.remove_minimums(account);
        let one: &[&str] = &[account];
        // Each was pre-created with the account; nothing to undo for one that is not there.
        let _ = self.up.remove_label_values(one);
        let _ = self.last_success.remove_label_values(one);
        let _ = self.backoff.remove_label_values(one);
        let _ = self.polls.remove_label_values(one);
        let _ = self.poll_duration.remove_label_values(one);
        let _ = self.unpriced.remove_label_values(one);
        for reason in ErrorReason::ALL {
            let _ = self
                .poll_errors
                .remove_label_values(&[account, reason.as_str()]);
        }
        self.set_endpoints(account, &[]);
        self.margin_level_min.clear(account);
        lock(&self.accounts).remove(account);
    }

    /// Declares the endpoints an account polls: their `kraken_endpoint_up` (0 until the first answer)
    /// and error counters (every reason at 0) exist from now on; those of endpoints no longer polled,
    /// and the margin and Earn series they fed, are removed.
    pub fn set_endpoints(&self, account: &str, endpoints: &[&'static str]) {
        let before = lock(&self.endpoints)
            .insert(account.to_string(), endpoints.to_vec())
            .unwrap_or_default();
        let mut up: Vec<(Vec<String>, f64)> = Vec::new();
        for endpoint in endpoints {
            let current = self
                .endpoint_up
                .value(account, &[endpoint.to_string()])
                .unwrap_or(0.0);
            up.push((vec![endpoint.to_string()], current));
            for reason in ErrorReason::ALL {
                self.endpoint_errors
                    .with_label_values(&[account, endpoint, reason.as_str()]);
            }
        }
        self.endpoint_up.replace(account, &up);
        for gone in before.iter().filter(|e| !endpoints.contains(e)) {
            for reason in ErrorReason::ALL {
                let _ = self
                    .endpoint_errors
                    .remove_label_values(&[account, gone, reason.as_str()]);
            }
            match *gone {
                crate::kraken::trade_balance::METHOD => self.clear_margin(account),
                crate::kraken::earn_allocations::METHOD => self.clear_earn(account),
                _ => {}
            }
        }
        if endpoints.is_empty() {
            lock(&self.endpoints).remove(account);
        }
    }

    /// Records one call of an endpoint: `kraken_endpoint_up` and, on failure, its error counter.
    pub fn record_endpoint(&self, account: &str, endpoint: &str, failure: Option<ErrorReason>) {
        self.endpoint_up.set(
            account,
            vec![endpoint.to_string()],
            if failure.is_none() { 1.0 } else { 0.0 },
        );
        if let Some(reason) = failure {
            self.endpoint_errors
                .with_label_values(&[account, endpoint, reason.as_str()])
                .inc();
        }
    }

    /// Replaces the account's margin figures, all in `quote`; the margin level only while Kraken
    /// reports one (open positions).
    pub fn replace_margin(&self, account: &str, quote: &str, figures: &TradeBalance) {
        for (family, (_, _, figure)) in self.margin.iter().zip(MARGIN_FAMILIES) {
            family.replace(
                account,
                &[(vec![quote.to_string()], to_f64(figure(figures)))],
            );
        }
        let level: Vec<(Vec<String>, f64)> = figures
            .margin_level_percent
            .map(|percent| (Vec::new(), to_f64(percent / Decimal::ONE_HUNDRED)))
            .into_iter()
            .collect();
        self.margin_level.replace(account, &level);
    }

    /// Removes the account's margin figures (they went stale, or margin was turned off).
    pub fn clear_margin(&self, account: &str) {
        for family in &self.margin {
            family.clear(account);
        }
        self.margin_level.clear(account);
    }

    /// Replaces the account's Earn series; `asset_of` names each allocation's asset label.
    pub fn replace_earn(
        &self,
        account: &str,
        allocations: &[Allocation],
        asset_of: impl Fn(&str) -> String,
    ) {
        let mut allocated = Vec::new();
        let mut releases = Vec::new();
        let mut rewarded = Vec::new();
        for allocation in allocations {
            let asset = asset_of(&allocation.native_asset);
            let strategy = allocation.strategy_id.clone();
            for (state, amount) in &allocation.states {
                allocated.push((
                    vec![asset.clone(), strategy.clone(), state.clone()],
                    to_f64(*amount),
                ));
            }
            if let Some(at) = allocation.next_release {
                releases.push((vec![asset.clone(), strategy.clone()], at as f64));
            }
            rewarded.push((vec![asset, strategy], to_f64(allocation.rewarded)));
        }
        self.earn_allocated.replace(account, &allocated);
        self.earn_next_release.replace(account, &releases);
        self.earn_rewarded.replace(account, &rewarded);
    }

    /// Removes the account's Earn series (they went stale, or Earn was turned off).
    pub fn clear_earn(&self, account: &str) {
        self.earn_allocated.clear(account);
        self.earn_next_release.clear(account);
        self.earn_rewarded.clear(account);
    }

    /// Exports the account's minimum margin level, or removes it.
    pub fn set_margin_minimum(&self, account: &str, min_level: Option<Decimal>) {
        let rows: Vec<(Vec<String>, f64)> = min_level
            .map(|level| (Vec::new(), to_f64(level)))
            .into_iter()
            .collect();
        self.margin_level_min.replace(account, &rows);
    }

    /// Records a configuration reload: `kraken_exporter_config_last_reload_successful` and, on
    /// success, its timestamp.
    pub fn record_reload(&self, succeeded: bool) {
        self.reload_successful
            .with_label_values(NO_LABELS)
            .set(if succeeded { 1.0 } else { 0.0 });
        if succeeded {
            self.reload_success_time
                .with_label_values(NO_LABELS)
                .set(unix_seconds(SystemTime::now()));
        }
    }

    /// Records a finished poll: its duration and, on failure, its reason; sets `kraken_up`.
    pub fn record_poll(&self, account: &str, duration: Duration, failure: Option<ErrorReason>) {
        self.polls.with_label_values(&[account]).inc();
        self.poll_duration
            .with_label_values(&[account])
            .observe(duration.as_secs_f64());
        match failure {
            None => {
                self.up.with_label_values(&[account]).set(1.0);
                self.last_success
                    .with_label_values(&[account])
                    .set(unix_seconds(SystemTime::now()));
            }
            Some(reason) => {
                self.up.with_label_values(&[account]).set(0.0);
                self.poll_errors
                    .with_label_values(&[account, reason.as_str()])
                    .inc();
            }
        }
    }

    /// Replaces the account's balance series with these: new values set, vanished assets removed.
    pub fn replace_balances<'a, I>(&self, account: &str, balances: I)
    where
        I: IntoIterator<Item = (&'a AssetLabels, &'a AssetBalance)>,
    {
        let chunks = families::render_balances(account, balances);
        lock(&self.balance_chunks).insert(account.to_string(), chunks);
    }

    /// Sets the current failure backoff of an account (zero after a success).
    pub fn set_backoff(&self, account: &str, wait: Duration) {
        self.backoff
            .with_label_values(&[account])
            .set(wait.as_secs_f64());
    }

    /// Removes every balance and value series of an account (its data went stale); thresholds stay.
    pub fn clear_balances(&self, account: &str) {
        self.replace_balances(account, std::iter::empty());
        self.replace_spendable(account, &[]);
        self.replace_values(account, &AccountValues::default());
    }

    /// Replaces the account's `kraken_spendable` series with these (asset, amount) pairs.
    pub fn replace_spendable(&self, account: &str, spendable: &[(String, Decimal)]) {
        let chunks = families::render_spendable(account, spendable);
        lock(&self.spendable_chunks).insert(account.to_string(), chunks);
    }

    /// Replaces the account's value series and its count of unpriced assets.
    pub fn replace_values(&self, account: &str, values: &AccountValues) {
        let chunks = families::render_values(account, values);
        lock(&self.value_chunks).insert(account.to_string(), chunks);
        self.unpriced
            .with_label_values(&[account])
            .set(values.unpriced as f64);
    }

    /// Replaces every `kraken_asset_price` series.
    ///
    /// New values are set before vanished series are removed, so a concurrent publish never sees the
    /// family emptied half-way.
    pub fn set_prices(&self, prices: &[(String, String, Decimal)]) {
        let mut exported = lock(&self.exported_prices);
        let mut current = std::collections::BTreeSet::new();
        for (asset, quote, price) in prices {
            self.asset_price
                .with_label_values(&[asset.as_str(), quote.as_str()])
                .set(to_f64(*price));
            current.insert((asset.clone(), quote.clone()));
        }
        for (asset, quote) in exported.difference(&current) {
            // Present since it was set before; nothing to undo if it is not.
            let _ = self
                .asset_price
                .remove_label_values(&[asset.as_str(), quote.as_str()]);
        }
        *exported = current;
    }

    /// Records a refresh of prices: `kraken_prices_up` and, on success, its timestamp.
    pub fn record_price_refresh(&self, succeeded: bool) {
        let up: &[&str] = &[];
        self.prices_up
            .with_label_values(up)
            .set(if succeeded { 1.0 } else { 0.0 });
        if succeeded {
            self.prices_last_success
                .with_label_values(up)
                .set(unix_seconds(SystemTime::now()));
        }
    }
}

impl Metrics {
    /// Joins the balance chunks and the rendered registry, plain and gzip, for the next scrapes.
    /// Callers hold `publishing` (or own the only reference, in [`Metrics::new`]).
    fn publish(&self) {
        let registry = Encoded::of(encode(&self.registry));
        let published: Arc<[Encoded]> = {
            let mut parts: Vec<Encoded> = Vec::new();
            for (headers, chunks) in [
                (&self.spendable_headers, &self.spendable_chunks),
                (&self.balance_headers, &self.balance_chunks),
                (&self.value_headers, &self.value_chunks),
            ] {
                let chunks = lock(chunks);
                for (index, header) in headers.iter().enumerate() {
                    let lines: Vec<&Encoded> = chunks
                        .values()
                        .map(|account| &account[index])
                        .filter(|chunk| !chunk.is_empty())
                        .collect();
                    if !lines.is_empty() {
                        parts.push(header.clone());
                        parts.extend(lines.into_iter().cloned());
                    }
                }
            }
            parts.push(registry);
            parts.into()
        };
        crate::sync::write(&self.exposition).published = published;
    }

    /// What a scrape serves: the last published text plus process metrics at most a second old.
    pub fn scrape(&self) -> Scrape {
        let now = Instant::now();
        let fresh = |e: &Exposition| {
            e.process_rendered_at
                .is_some_and(|at| now.duration_since(at) < PROCESS_REFRESH)
        };
        {
            let exposition = crate::sync::read(&self.exposition);
            if fresh(&exposition) {
                return Scrape {
                    published: Arc::clone(&exposition.published),
                    process: exposition.process.clone(),
                };
            }
        }
        let mut exposition = crate::sync::write(&self.exposition);
        if !fresh(&exposition) {
            exposition.process = Encoded::of(encode(&self.process_registry));
            exposition.process_rendered_at = Some(now);
        }
        Scrape {
            published: Arc::clone(&exposition.published),
            process: exposition.process.clone(),
        }
    }

    /// The full exposition as one string (for `--once` and tests).
    pub fn render_text(&self) -> String {
        self.scrape().text()
    }
}

fn encode(registry: &Registry) -> Bytes {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("encoding into a Vec cannot fail");
    Bytes::from(buffer)
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::assets::classify;
    use std::str::FromStr;

    fn balance(key: &str, amount: &str) -> (AssetLabels, AssetBalance) {
        (
            classify(key),
            AssetBalance {
                key: key.to_string(),
                balance: Decimal::from_str(amount).unwrap(),
                hold_trade: Decimal::ZERO,
                credit: Decimal::ZERO,
                credit_used: Decimal::ZERO,
            },
        )
    }

    #[test]
    fn decimals_convert_to_the_nearest_f64() {
        assert_eq!(to_f64(Decimal::from_str("17185.45").unwrap()), 17185.45);
        assert_eq!(to_f64(Decimal::from_str("0.0000000001").unwrap()), 1e-10);
        assert_eq!(
            to_f64(Decimal::from_str("101.1234567890").unwrap()),
            101.123456789
        );
    }

    #[test]
    fn replacing_balances_removes_vanished_series_only_for_that_account() {
        let metrics = Metrics::new(&["a", "b"]);
        let first = [balance("XXBT", "1"), balance("DOT.S", "2")];
        metrics.update(|m| m.replace_balances("a", first.iter().map(|(l, b)| (l, b))));
        metrics.update(|m| m.replace_balances("b", first.iter().map(|(l, b)| (l, b))));
        let second = [balance("XXBT", "3")];
        metrics.update(|m| m.replace_balances("a", second.iter().map(|(l, b)| (l, b))));
        let text = metrics.render_text();
        assert!(
            text.contains(r#"kraken_balance{account="a",asset="XBT",family="spot"} 3"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"kraken_balance{account="a",asset="DOT""#),
            "{text}"
        );
        assert!(
            text.contains(r#"kraken_balance{account="b",asset="DOT",family="staked"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn concurrent_updates_never_leave_an_older_render_published() {
        // Each update renders and stores under one lock: the last render stored is the newest state.
        let accounts: Vec<String> = (0..8).map(|i| format!("a{i}")).collect();
        for _ in 0..50 {
            let metrics = Metrics::new(&accounts);
            std::thread::scope(|scope| {
                for account in &accounts {
                    let metrics = &metrics;
                    scope.spawn(move || {
                        metrics.update(|m| m.record_poll(account, Duration::from_millis(5), None))
                    });
                }
            });
            let text = metrics.render_text();
            for account in &accounts {
                assert!(
                    text.contains(&format!(r#"kraken_up{{account="{account}"}} 1"#)),
                    "{account}: {text}"
                );
            }
        }
    }

    #[test]
    fn gzip_body_decodes_to_the_plain_body() {
        use std::io::Read;
        let metrics = Metrics::new(&["a"]);
        let first = [balance("XXBT", "1.5"), balance("DOT.S", "2")];
        metrics.update(|m| m.replace_balances("a", first.iter().map(|(l, b)| (l, b))));
        metrics.update(|m| m.record_poll("a", Duration::from_millis(5), None));
        let body = metrics.scrape();
        let gzip: Vec<u8> = body.gzip().concat();
        let plain: Vec<u8> = body.plain().concat();
        let mut decoded = String::new();
        flate2::read::MultiGzDecoder::new(&gzip[..])
            .read_to_string(&mut decoded)
            .unwrap();
        assert_eq!(decoded.as_bytes(), &plain[..]);
        assert!(decoded.contains(r#"kraken_up{account="a"} 1"#));
        assert!(decoded.contains(r#"kraken_balance{account="a",asset="XBT",family="spot"} 1.5"#));
        assert!(gzip.len() < plain.len());
    }

    #[test]
    fn scrapes_share_the_rendered_bytes_until_something_changes() {
        let metrics = Metrics::new(&["a"]);
        let first = metrics.scrape();
        let second = metrics.scrape();
        // Same allocations: nothing was rendered or compressed for the second scrape.
        for (a, b) in first.plain().iter().zip(second.plain().iter()) {
            assert_eq!(a.as_ptr(), b.as_ptr());
        }
        assert_eq!(first.gzip()[0].as_ptr(), second.gzip()[0].as_ptr());
        metrics.update(|_| {});
        assert_ne!(
            metrics.scrape().plain()[0].as_ptr(),
            first.plain()[0].as_ptr()
        );
    }

    #[test]
    fn balance_families_are_contiguous_and_sorted_by_account() {
        let metrics = Metrics::new(&["b", "a"]);
        let assets = [balance("XXBT", "1"), balance("ZUSD", "2")];
        metrics.update(|m| m.replace_balances("b", assets.iter().map(|(l, b)| (l, b))));
        metrics.update(|m| m.replace_balances("a", assets.iter().map(|(l, b)| (l, b))));
        let text = metrics.render_text();
        let names: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kraken_balance"))
            .map(|l| l.split('{').next().unwrap())
            .collect();
        let mut families = names.clone();
        families.dedup();
        let mut unique = families.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            families.len(),
            unique.len(),
            "each family's lines are together: {families:?}"
        );
        let first_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kraken_balance{"))
            .collect();
        assert!(
            first_lines[0].contains(r#"account="a""#) && first_lines[3].contains(r#"account="b""#)
        );
        assert_eq!(text.matches("# TYPE kraken_balance gauge").count(), 1);
    }

    #[test]
    fn prices_that_are_no_longer_held_are_removed() {
        let metrics = Metrics::new(&["a"]);
        let price = |asset: &str, value: &str| {
            (
                asset.to_string(),
                "USD".to_string(),
                Decimal::from_str(value).unwrap(),
            )
        };
        metrics.update(|m| m.set_prices(&[price("XBT", "95000.1"), price("DOT", "7.5")]));
        metrics.update(|m| m.set_prices(&[price("XBT", "96000")]));
        let text = metrics.render_text();
        assert!(
            text.contains(r#"kraken_asset_price{asset="XBT",quote="USD"} 96000"#),
            "{text}"
        );
        assert!(!text.contains(r#"asset="DOT""#), "{text}");
    }

    #[test]
    fn every_account_starts_with_up_zero_and_zeroed_error_counters() {
        let text = Metrics::new(&["a"]).render_text();
        assert!(text.contains(r#"kraken_up{account="a"} 0"#));
        for reason in ErrorReason::ALL {
            let series = format!(r#"kraken_poll_errors_total{{account="a",reason="{reason}"}} 0"#);
            assert!(text.contains(&series), "{series}");
        }
        assert!(text.contains("kraken_exporter_build_info{"));
    }
}
