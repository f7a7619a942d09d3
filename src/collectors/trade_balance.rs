//! `TradeBalance` -> the margin families (`kraken_margin_*{account, quote}`), the margin level and its
//! configured minimum. Polled with `margin = true`; its options (`margin`, `margin_asset`,
//! `min_margin_level`) are read and checked here ([`margin_options`]).

use std::sync::Arc;

use rust_decimal::Decimal;

use super::{Collector, Context, Endpoint, EndpointFamilies, Fetch};
use crate::config::{exact_decimal, AccountSettings, ConfigError, OptionSpec};
use crate::exposition::to_f64;
use crate::kraken::assets::{asset_label_of, kraken_code};
use crate::kraken::trade_balance::{TradeBalance, METHOD, PERMISSION};
use crate::kraken::KrakenClient;
use crate::metrics::{AccountSeries, Changes, Metrics, Scope};

/// The table's line: accounts with `margin = true`.
pub(super) const ENDPOINT: Endpoint = Endpoint {
    method: METHOD,
    permission: PERMISSION,
    cost: |_| 1,
    decides_up: false,
    register: |metrics| Arc::new(MarginFamilies::register(metrics)),
    polls: |account| matches!(margin_options(account, ""), Ok(Some(_))),
    interval: super::every_poll,
    options: OptionSpec {
        account_keys: &["margin", "margin_asset", "min_margin_level"],
        global_keys: &[],
        check: |_, account, at| margin_options(account, at).map(|_| ()),
    },
    thresholds: |account| {
        margin_options(account, "")
            .ok()
            .flatten()
            .and_then(|margin| margin.min_level)
            .map(|level| format!("margin level >= {level}"))
            .into_iter()
            .collect()
    },
};

/// An account's margin options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarginOptions {
    /// The currency of every figure (`margin_asset`, default `USD`), as the `quote` label.
    pub asset: String,
    /// `min_margin_level` as a ratio (`2.0` is 200 %), exported as `kraken_margin_level_min_ratio`.
    pub min_level: Option<Decimal>,
}

/// `margin`, `margin_asset` and `min_margin_level` of an account (`None` without `margin = true`);
/// the last two only with `margin = true`. `at` names the account in errors.
pub fn margin_options(
    account: &AccountSettings,
    at: &str,
) -> Result<Option<MarginOptions>, ConfigError> {
    let options = &account.options;
    let asset = options.text(at, "margin_asset")?;
    let min_level = options.text(at, "min_margin_level")?;
    if options.flag(at, "margin")? != Some(true) {
        if asset.is_some() || min_level.is_some() {
            return Err(ConfigError(format!(
                "{at}: margin_asset and min_margin_level need margin = true; add it, or remove them"
            )));
        }
        return Ok(None);
    }
    let asset = match asset.map(str::trim) {
        None => "USD".to_string(),
        Some(code) if !code.is_empty() && !code.contains(char::is_whitespace) => {
            asset_label_of(code)
        }
        Some(code) => {
            return Err(ConfigError(format!(
                "{at}: margin_asset = {code:?} is not a currency code; use e.g. \"USD\", \"EUR\" or \"XBT\""
            )))
        }
    };
    let min_level = match min_level {
        None => None,
        Some(text) => {
            let level = exact_decimal(
                at,
                "min_margin_level",
                text,
                "write the ratio as a string, e.g. \"2.0\" for 200 %",
            )?;
            if level <= Decimal::ZERO {
                return Err(ConfigError(format!(
                    "{at}: min_margin_level = {text:?} must be above 0; e.g. \"2.0\" for 200 %"
                )));
            }
            if level > Decimal::from(100) {
                return Err(ConfigError(format!(
                    "{at}: min_margin_level = {text:?} is a ratio, not a percentage: \"2.0\" means 200 % (Kraken's margin level of 200)"
                )));
            }
            Some(level)
        }
    };
    Ok(Some(MarginOptions { asset, min_level }))
}

impl EndpointFamilies for MarginFamilies {
    fn collector(
        self: Arc<Self>,
        account: &AccountSettings,
        _context: &Context<'_>,
    ) -> Option<Box<dyn Collector>> {
        let margin = margin_options(account, "").ok()??;
        Some(Box::new(TradeBalanceCollector {
            asset: kraken_code(&margin.asset).to_string(),
            quote: margin.asset,
            min_level: margin.min_level,
            families: self,
            fetched: None,
            level: None,
        }))
    }
}

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

/// The families `TradeBalance` feeds.
pub struct MarginFamilies {
    /// One per [`MARGIN_FAMILIES`] entry.
    figures: Vec<AccountSeries>,
    level: AccountSeries,
    level_min: AccountSeries,
}

impl MarginFamilies {
    fn register(metrics: &Metrics) -> Self {
        let data = Scope::Data(METHOD);
        Self {
            figures: MARGIN_FAMILIES
                .iter()
                .map(|(name, help, _)| AccountSeries::register(metrics, data, name, help, &["quote"]))
                .collect(),
            level: AccountSeries::register(metrics, data, "kraken_margin_level_ratio", "Margin level as a ratio, equity / margin used (TradeBalance ml / 100); absent while no position is open. Kraken margin-calls and liquidates as it falls.", &[]),
            level_min: AccountSeries::register(metrics, Scope::Configured(METHOD), "kraken_margin_level_min_ratio", "Configured minimum margin level as a ratio (min_margin_level); alert when kraken_margin_level_ratio falls below it.", &[]),
        }
    }
}

/// Polls `TradeBalance` with every figure in one currency.
pub struct TradeBalanceCollector {
    /// The `quote` label (`USD`).
    quote: String,
    /// The same currency as Kraken's requests write it (`ZUSD`).
    asset: String,
    min_level: Option<Decimal>,
    families: Arc<MarginFamilies>,
    fetched: Option<TradeBalance>,
    /// The margin level of the last successful call (a ratio; `None` without open positions).
    level: Option<Decimal>,
}

impl Collector for TradeBalanceCollector {
    fn endpoint(&self) -> &'static str {
        METHOD
    }

    fn permission(&self) -> &'static str {
        PERMISSION
    }

    fn configure(&self, account: &str, metrics: &mut Changes<'_>) {
        let rows: Vec<(Vec<String>, f64)> = self
            .min_level
            .map(|level| (Vec::new(), to_f64(level)))
            .into_iter()
            .collect();
        self.families.level_min.replace(metrics, account, &rows);
    }

    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            self.fetched = Some(client.trade_balance(&self.asset).await?);
            Ok(1)
        })
    }

    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>) {
        let Some(figures) = self.fetched.take() else {
            return;
        };
        for (family, (_, _, figure)) in self.families.figures.iter().zip(MARGIN_FAMILIES) {
            family.replace(
                metrics,
                account,
                &[(vec![self.quote.clone()], to_f64(figure(&figures)))],
            );
        }
        // The level only while Kraken reports one (open positions).
        self.level = figures
            .margin_level_percent
            .map(|percent| percent / Decimal::ONE_HUNDRED);
        let level: Vec<(Vec<String>, f64)> = self
            .level
            .map(|ratio| (Vec::new(), to_f64(ratio)))
            .into_iter()
            .collect();
        self.families.level.replace(metrics, account, &level);
    }

    fn comparisons(&self) -> Vec<super::Comparison> {
        super::Comparison::of("margin level", self.level, self.min_level)
    }
}
