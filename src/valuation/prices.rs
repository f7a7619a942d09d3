//! The price task: refreshes asset names, pairs and last prices from Kraken's public API on its own
//! schedule, shared by all accounts, and revalues every account when prices change; and the
//! valuation's families ([`ValuationFamilies`]), which it and the balance collector fill.
//!
//! Calls per refresh: one `Ticker` (every pair at once). `Assets` and `AssetPairs` change rarely and are
//! fetched at start and then daily (retried at the next refresh after a failure). A failure here never
//! touches the balance metrics: prices and values keep their last state, `kraken_prices_up` drops to 0.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use rust_decimal::Decimal;

use crate::exposition::{render_labels, to_f64, Encoded, GaugeFamily};
use crate::kraken::assets::AssetNames;
use crate::kraken::public::{PairInfo, PublicClient};
use crate::kraken::PollError;
use crate::metrics::{unix_seconds, AccountSeries, Changes, Metrics, RenderedFamilies, Scope};
use crate::valuation::{AccountValues, AssetPrice, Market, Valuation, ValueRow};

/// The families valued in a quote currency: balances `{account, asset, family, quote}`, then
/// spendable amounts `{account, asset, quote}`.
const VALUE_FAMILIES: &[GaugeFamily] = &[
    GaugeFamily { name: "kraken_balance_value", help: "kraken_balance valued in the quote currency at Kraken's last trade price (docs/metrics.md says how prices are found); fee credits are never valued." },
    GaugeFamily { name: "kraken_balance_available_value", help: "kraken_balance_available valued in the quote currency at Kraken's last trade price." },
    GaugeFamily { name: "kraken_spendable_value", help: "kraken_spendable valued in the quote currency at Kraken's last trade price." },
];

/// The valuation's families: the values of each account's balances (owned by the balances'
/// endpoint, so they go with its data), its count of unpriced rows, and the prices of held assets.
pub struct ValuationFamilies {
    values: RenderedFamilies,
    unpriced: AccountSeries,
    asset_price: AccountSeries,
    prices_up: AccountSeries,
    prices_last_success: AccountSeries,
}

impl ValuationFamilies {
    pub fn register(metrics: &Metrics) -> Self {
        let balances = Scope::Data(crate::kraken::balance_ex::METHOD);
        Self {
            values: RenderedFamilies::register(metrics, balances, VALUE_FAMILIES),
            unpriced: AccountSeries::register(metrics, balances, "kraken_unpriced_assets", "Balances of the account (asset and family) without a price in at least one quote currency; they get no value series.", &[]),
            asset_price: AccountSeries::register(metrics, Scope::Global, "kraken_asset_price", "Price of one unit of the asset in the quote currency, from Kraken's last trades (ETH2 at ETH's price; see docs/metrics.md).", &["asset", "quote"]),
            prices_up: AccountSeries::register(metrics, Scope::Global, "kraken_prices_up", "1 if the last refresh of prices from Kraken's public API succeeded, 0 if it failed.", &[]),
            prices_last_success: AccountSeries::register(metrics, Scope::Global, "kraken_prices_last_success_timestamp_seconds", "Unix time of the last successful refresh of prices.", &[]),
        }
    }

    /// Replaces the account's value series and its count of unpriced assets.
    pub fn replace_values(&self, metrics: &mut Changes<'_>, account: &str, values: &AccountValues) {
        self.values
            .replace(metrics, account, render_values(account, values));
        self.unpriced
            .replace(metrics, account, &[(Vec::new(), values.unpriced as f64)]);
    }

    /// Removes every value series of an account (the quote currencies changed).
    pub fn clear_values(&self, metrics: &mut Changes<'_>, account: &str) {
        self.values.clear(metrics, account);
        self.unpriced.clear(metrics, account);
    }

    /// Replaces every `kraken_asset_price` series.
    pub fn set_prices(&self, metrics: &mut Changes<'_>, prices: &[AssetPrice]) {
        let rows: Vec<(Vec<String>, f64)> = prices
            .iter()
            .map(|(asset, quote, price)| (vec![asset.clone(), quote.clone()], to_f64(*price)))
            .collect();
        self.asset_price.replace(metrics, "", &rows);
    }

    /// Records a refresh of prices: `kraken_prices_up` and, on success, its timestamp.
    pub fn record_refresh(&self, metrics: &mut Changes<'_>, succeeded: bool) {
        let up = if succeeded { 1.0 } else { 0.0 };
        self.prices_up.set(metrics, "", Vec::new(), up);
        if succeeded {
            self.prices_last_success.set(
                metrics,
                "",
                Vec::new(),
                unix_seconds(std::time::SystemTime::now()),
            );
        }
    }
}

/// Renders one account's lines of each of [`VALUE_FAMILIES`], in that order.
fn render_values(account: &str, values: &AccountValues) -> Vec<Encoded> {
    let rows: Vec<(String, &ValueRow)> = values
        .rows
        .iter()
        .map(|row| {
            let labels = render_labels(&[
                ("account", account),
                ("asset", &row.labels.asset),
                ("family", row.labels.family.label()),
                ("quote", &row.quote),
            ]);
            (labels, row)
        })
        .collect();
    let pick: [fn(&ValueRow) -> Decimal; 2] = [|r| r.value, |r| r.available_value];
    let mut chunks: Vec<Encoded> = VALUE_FAMILIES
        .iter()
        .zip(pick)
        .map(|(family, amount)| {
            family.render(
                rows.iter()
                    .map(|(labels, row)| (labels.as_str(), to_f64(amount(row)))),
            )
        })
        .collect();
    let spendable: Vec<(String, f64)> = values
        .spendable
        .iter()
        .map(|row| {
            (
                render_labels(&[
                    ("account", account),
                    ("asset", &row.asset),
                    ("quote", &row.quote),
                ]),
                to_f64(row.value),
            )
        })
        .collect();
    chunks.push(
        VALUE_FAMILIES[2].render(
            spendable
                .iter()
                .map(|(labels, value)| (labels.as_str(), *value)),
        ),
    );
    chunks
}

/// How often asset names and pairs are re-read.
pub const METADATA_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

/// What Kraken's public API says about assets and pairs, which changes rarely: made once and kept
/// across reloads, so a reload asks again only when it is due ([`METADATA_REFRESH`]) or when
/// `api_url` changed, and asset labels never fall back to raw codes meanwhile.
#[derive(Default)]
pub struct MarketCache {
    /// The asset names learned from `Assets` (shared with the balance collectors).
    pub names: Arc<AssetNames>,
    metadata: std::sync::Mutex<Metadata>,
}

#[derive(Default)]
struct Metadata {
    /// The `api_url` the metadata came from.
    api_url: String,
    pairs: Option<BTreeMap<String, PairInfo>>,
    /// The `asset` label values Kraken lists, from the last `Assets`.
    listed: Option<std::collections::BTreeSet<String>>,
    names_at: Option<Instant>,
    pairs_at: Option<Instant>,
}

impl MarketCache {
    /// The metadata, forgotten first if it came from another `api_url`.
    fn metadata_for(&self, api_url: &str) -> std::sync::MutexGuard<'_, Metadata> {
        let mut metadata = crate::sync::lock(&self.metadata);
        if metadata.api_url != api_url {
            *metadata = Metadata {
                api_url: api_url.to_string(),
                ..Metadata::default()
            };
        }
        metadata
    }
}

/// Refreshes prices for every account. A clone made before it runs starts afresh (the supervisor
/// keeps one to start the task again); asset names and pairs come from the [`MarketCache`].
#[derive(Clone)]
pub struct PriceRefresher {
    client: PublicClient,
    valuation: Arc<Valuation>,
    metrics: Arc<Metrics>,
    families: Arc<ValuationFamilies>,
    cache: Arc<MarketCache>,
    /// Told Kraken's asset list once this refresher has it (from Kraken or the cache: at start and
    /// after each reload), to check what the configuration names against it.
    on_listed: Option<OnListed>,
}

/// What is done with Kraken's asset list (the `asset` label values it lists) once it is read.
pub type OnListed = Arc<dyn Fn(&std::collections::BTreeSet<String>) + Send + Sync>;

fn due(at: Option<Instant>) -> bool {
    at.is_none_or(|at| at.elapsed() >= METADATA_REFRESH)
}

impl PriceRefresher {
    pub fn new(
        client: PublicClient,
        valuation: Arc<Valuation>,
        metrics: Arc<Metrics>,
        families: Arc<ValuationFamilies>,
        cache: Arc<MarketCache>,
    ) -> Self {
        Self {
            client,
            valuation,
            metrics,
            families,
            cache,
            on_listed: None,
        }
    }

    /// Calls `on_listed` with Kraken's asset list the first time it is read.
    pub fn checking(mut self, on_listed: OnListed) -> Self {
        self.on_listed = Some(on_listed);
        self
    }

    /// One refresh: names and pairs when due, then last prices, then every account's values; a success
    /// is published with the new values.
    pub async fn refresh(&mut self) -> Result<(), PollError> {
        let api_url = self.client.api_url().to_string();
        let (names_due, pairs_due) = {
            let metadata = self.cache.metadata_for(&api_url);
            (due(metadata.names_at), due(metadata.pairs_at))
        };
        if names_due {
            match self.client.assets().await {
                Ok(assets) => {
                    let altnames = crate::kraken::public::altnames(&assets);
                    self.cache.names.learn(altnames.clone());
                    let listed = crate::kraken::assets::listed_labels(altnames);
                    let mut metadata = self.cache.metadata_for(&api_url);
                    metadata.names_at = Some(Instant::now());
                    metadata.listed = Some(listed);
                }
                // The built-in table names the common codes meanwhile.
                Err(err) => {
                    tracing::warn!(reason = %err.reason, error = %err.message, "cannot read Kraken's asset names; using the built-in table until the next try")
                }
            }
        }
        if self.on_listed.is_some() {
            let listed = self.cache.metadata_for(&api_url).listed.clone();
            if let (Some(listed), Some(on_listed)) = (listed, self.on_listed.take()) {
                on_listed(&listed);
            }
        }
        if pairs_due {
            match self.client.asset_pairs().await {
                Ok(pairs) => {
                    let mut metadata = self.cache.metadata_for(&api_url);
                    metadata.pairs = Some(pairs);
                    metadata.pairs_at = Some(Instant::now());
                }
                Err(err) if self.cache.metadata_for(&api_url).pairs.is_none() => return Err(err),
                Err(err) => {
                    tracing::warn!(reason = %err.reason, error = %err.message, "cannot refresh Kraken's asset pairs; keeping the previous list")
                }
            }
        }
        let last_prices = self.client.last_prices().await?;
        let market = {
            let metadata = self.cache.metadata_for(&api_url);
            let Some(pairs) = &metadata.pairs else {
                unreachable!("pairs are loaded or the refresh returned above")
            };
            Market::from_kraken(pairs, &last_prices, &self.cache.names)
        };
        let families = &self.families;
        self.metrics.update(|metrics| {
            let (values, prices) = self.valuation.set_market(market);
            for (account, values) in &values {
                families.replace_values(metrics, account, values);
            }
            families.set_prices(metrics, &prices);
            families.record_refresh(metrics, true);
        });
        Ok(())
    }

    /// Refreshes at once, then every `interval`, until `shutdown` changes.
    pub async fn run(mut self, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            let result = tokio::select! {
                result = self.refresh() => result,
                _ = shutdown.changed() => return,
            };
            if result.is_err() {
                let families = &self.families;
                self.metrics
                    .update(|metrics| families.record_refresh(metrics, false));
            }
            match result {
                Ok(()) if failing => {
                    tracing::info!("prices refreshed again");
                    failing = false;
                }
                Ok(()) => tracing::debug!("prices refreshed"),
                Err(err) => {
                    tracing::warn!(reason = %err.reason, error = %err.message, hint = err.reason.hint(), "price refresh from Kraken's public API failed; keeping the last prices and values");
                    failing = true;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
