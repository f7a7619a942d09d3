//! The price task: refreshes asset names, pairs and last prices from Kraken's public API on its own
//! schedule, shared by all accounts, and revalues every account when prices change.
//!
//! Calls per refresh: one `Ticker` (every pair at once). `Assets` and `AssetPairs` change rarely and are
//! fetched at start and then daily (retried at the next refresh after a failure). A failure here never
//! touches the balance metrics: prices and values keep their last state, `kraken_prices_up` drops to 0.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::kraken::assets::AssetNames;
use crate::kraken::public::{PairInfo, PublicClient};
use crate::kraken::PollError;
use crate::metrics::Metrics;
use crate::valuation::{Market, Valuation};

/// How often asset names and pairs are re-read.
pub const METADATA_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

/// Refreshes prices for every account.
pub struct PriceRefresher {
    client: PublicClient,
    valuation: Arc<Valuation>,
    metrics: Arc<Metrics>,
    names: Arc<AssetNames>,
    pairs: Option<BTreeMap<String, PairInfo>>,
    names_at: Option<Instant>,
    pairs_at: Option<Instant>,
}

fn due(at: Option<Instant>) -> bool {
    at.is_none_or(|at| at.elapsed() >= METADATA_REFRESH)
}

impl PriceRefresher {
    pub fn new(
        client: PublicClient,
        valuation: Arc<Valuation>,
        metrics: Arc<Metrics>,
        names: Arc<AssetNames>,
    ) -> Self {
        Self {
            client,
            valuation,
            metrics,
            names,
            pairs: None,
            names_at: None,
            pairs_at: None,
        }
    }

    /// One refresh: names and pairs when due, then last prices, then every account's values; a success
    /// is published with the new values.
    pub async fn refresh(&mut self) -> Result<(), PollError> {
        if due(self.names_at) {
            match self.client.assets().await {
                Ok(assets) => {
                    self.names.learn(
                        assets
                            .iter()
                            .map(|(code, info)| (code.as_str(), info.altname.as_str())),
                    );
                    self.names_at = Some(Instant::now());
                }
                // The built-in table names the common codes meanwhile.
                Err(err) => {
                    tracing::warn!(reason = %err.reason, error = %err.message, "cannot read Kraken's asset names; using the built-in table until the next try")
                }
            }
        }
        if due(self.pairs_at) {
            match self.client.asset_pairs().await {
                Ok(pairs) => {
                    self.pairs = Some(pairs);
                    self.pairs_at = Some(Instant::now());
                }
                Err(err) if self.pairs.is_none() => return Err(err),
                Err(err) => {
                    tracing::warn!(reason = %err.reason, error = %err.message, "cannot refresh Kraken's asset pairs; keeping the previous list")
                }
            }
        }
        let Some(pairs) = &self.pairs else {
            unreachable!("pairs are loaded or the refresh returned above")
        };
        let last_prices = self.client.last_prices().await?;
        let market = Market::from_kraken(pairs, &last_prices, &self.names);
        self.metrics.update(|metrics| {
            let (values, prices) = self.valuation.set_market(market);
            for (account, values) in &values {
                metrics.replace_values(account, values);
            }
            metrics.set_prices(&prices);
            metrics.record_price_refresh(true);
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
                self.metrics
                    .update(|metrics| metrics.record_price_refresh(false));
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
