//! `BalanceEx` -> the balance families (`kraken_balance*`), what can be spent per asset
//! (`kraken_spendable`), their values in quote currencies, and the prices of held assets.

use std::collections::HashSet;

use super::{Collector, Fetch, Shared};
use crate::kraken::assets::{label_all_with, LabelledKeys};
use crate::kraken::balance_ex::out_of_range;
use crate::kraken::{Balances, KrakenClient, RebaseMultiplier};
use crate::metrics::Changes;
use crate::spendable::spendable_by_asset;
use crate::valuation::Holdings;

/// Polls `BalanceEx` and exports every row as Kraken sent it.
pub struct BalanceExCollector {
    rebase_multiplier: Option<RebaseMultiplier>,
    shared: Shared,
    warned_collisions: HashSet<String>,
    fetched: Option<Fetched>,
}

/// One answer with everything computed from it before it is handed to the metrics.
struct Fetched {
    balances: Balances,
    labelled: LabelledKeys,
    spendable: Vec<(String, rust_decimal::Decimal)>,
}

impl BalanceExCollector {
    pub fn new(rebase_multiplier: Option<RebaseMultiplier>, shared: Shared) -> Self {
        Self {
            rebase_multiplier,
            shared,
            warned_collisions: HashSet::new(),
            fetched: None,
        }
    }
}

impl Collector for BalanceExCollector {
    fn endpoint(&self) -> &'static str {
        crate::kraken::balance_ex::METHOD
    }

    fn permission(&self) -> &'static str {
        crate::kraken::balance_ex::PERMISSION
    }

    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            let balances = client.balance_ex(self.rebase_multiplier).await?;
            let labelled = label_all_with(
                &self.shared.names,
                balances.assets.iter().map(|a| a.key.as_str()),
            );
            let spendable = spendable_by_asset(&self.shared.names, &balances.assets, &labelled)
                .map_err(|asset| out_of_range(&asset))?;
            let count = balances.assets.len();
            self.fetched = Some(Fetched {
                balances,
                labelled,
                spendable,
            });
            Ok(count)
        })
    }

    fn apply(&mut self, account: &str, metrics: &Changes<'_>) {
        let Some(Fetched {
            balances,
            labelled,
            spendable,
        }) = self.fetched.take()
        else {
            return;
        };
        for key in &labelled.collisions {
            if self.warned_collisions.insert(key.clone()) {
                tracing::warn!(
                    account = %account,
                    raw_key = %key,
                    "two asset keys map to the same asset and family; both are exported under their raw key"
                );
            }
        }
        metrics.replace_balances(account, labelled.labels.iter().zip(&balances.assets));
        metrics.replace_spendable(account, &spendable);
        // Valued inside the update, so values and the price task's revaluations are published in
        // the order they were computed.
        if let Some(valuation) = &self.shared.valuation {
            let holdings = Holdings {
                rows: labelled.labels.into_iter().zip(balances.assets).collect(),
                spendable,
            };
            if let Some((values, prices)) = valuation.set_holdings(account, holdings) {
                metrics.replace_values(account, &values);
                metrics.set_prices(&prices);
            }
        }
    }

    fn clear(&mut self, account: &str, metrics: &Changes<'_>) {
        if let Some(valuation) = &self.shared.valuation {
            valuation.clear_holdings(account);
        }
        metrics.clear_balances(account);
    }
}
