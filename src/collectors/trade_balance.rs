//! `TradeBalance` -> the margin families (`kraken_margin_*{account, quote}`) and the margin level.

use super::{Collector, Fetch};
use crate::kraken::assets::kraken_code;
use crate::kraken::trade_balance::{TradeBalance, METHOD, PERMISSION};
use crate::kraken::KrakenClient;
use crate::metrics::Changes;

/// Polls `TradeBalance` with every figure in one currency.
pub struct TradeBalanceCollector {
    /// The `quote` label (`USD`).
    quote: String,
    /// The same currency as Kraken's requests write it (`ZUSD`).
    asset: String,
    fetched: Option<TradeBalance>,
}

impl TradeBalanceCollector {
    /// `quote` as in the `asset` label (`USD`, `EUR`, `XBT`).
    pub fn new(quote: &str) -> Self {
        Self {
            quote: quote.to_string(),
            asset: kraken_code(quote).to_string(),
            fetched: None,
        }
    }
}

impl Collector for TradeBalanceCollector {
    fn endpoint(&self) -> &'static str {
        METHOD
    }

    fn permission(&self) -> &'static str {
        PERMISSION
    }

    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            self.fetched = Some(client.trade_balance(&self.asset).await?);
            Ok(1)
        })
    }

    fn apply(&mut self, account: &str, metrics: &Changes<'_>) {
        if let Some(figures) = self.fetched.take() {
            metrics.replace_margin(account, &self.quote, &figures);
        }
    }

    fn clear(&mut self, account: &str, metrics: &Changes<'_>) {
        metrics.clear_margin(account);
    }
}
