//! Kraken Futures `accounts` -> the futures families (`kraken_futures_*`): the cash wallet, the flex
//! (multi-collateral) wallet per currency and in total with its margin ratio and configured minimum,
//! and each single-collateral margin wallet. Polled for accounts with a futures key pair.
//!
//! The endpoint has its own key, client, nonce sequence and rate budget: it is called even when the
//! account's spot key fails, and its failure touches nothing but its own series and health. Its
//! cost on the spot rate counter is 0. Where quote currencies are configured, the cash wallet is
//! valued at the prices of the moment of each futures poll (`kraken_futures_cash_value`).

use std::sync::Arc;

use rust_decimal::Decimal;

use super::{Collector, Context, Endpoint, EndpointFamilies, Fetch};
use crate::config::{exact_decimal, AccountSettings, ConfigError, OptionSpec};
use crate::exposition::to_f64;
use crate::kraken::futures::accounts::{FlexWallet, MarginWallet, METHOD, PERMISSION};
use crate::kraken::futures::{FuturesAccounts, FuturesClient};
use crate::kraken::{ErrorReason, Fingerprint, KrakenClient, PollError};
use crate::metrics::{AccountSeries, Changes, Metrics, Scope};
use crate::valuation::Valuation;

/// The table's line: accounts with `futures_api_key`.
pub(super) const ENDPOINT: Endpoint = Endpoint {
    method: METHOD,
    permission: PERMISSION,
    cost: |_| 0,
    decides_up: false,
    register: |metrics| Arc::new(FuturesFamilies::register(metrics)),
    polls: |account| account.futures.is_some(),
    interval: super::every_poll,
    options: OptionSpec {
        account_keys: &["futures_min_margin_ratio"],
        global_keys: &[],
        check: |_, account, at| min_margin_ratio(account, at).map(|_| ()),
    },
    thresholds: |account| {
        min_margin_ratio(account, "")
            .ok()
            .flatten()
            .map(|ratio| format!("futures margin ratio >= {ratio}"))
            .into_iter()
            .collect()
    },
};

/// `futures_min_margin_ratio` (only with a futures key pair), exported as
/// `kraken_futures_margin_ratio_min`; `at` names the account in errors.
pub fn min_margin_ratio(
    account: &AccountSettings,
    at: &str,
) -> Result<Option<Decimal>, ConfigError> {
    let Some(text) = account.options.text(at, "futures_min_margin_ratio")? else {
        return Ok(None);
    };
    if account.futures.is_none() {
        return Err(ConfigError(format!(
            "{at}: futures_min_margin_ratio needs a futures key pair; add futures_api_key and futures_api_secret_file, or remove it"
        )));
    }
    let ratio = exact_decimal(
        at,
        "futures_min_margin_ratio",
        text,
        "write the ratio of margin equity to maintenance margin as a string, e.g. \"2.0\"",
    )?;
    if ratio <= Decimal::ONE {
        return Err(ConfigError(format!(
            "{at}: futures_min_margin_ratio = {text:?} must be above 1: positions are liquidated when margin equity falls to the maintenance margin (ratio 1); e.g. \"2.0\""
        )));
    }
    Ok(Some(ratio))
}

impl EndpointFamilies for FuturesFamilies {
    fn collector(
        self: Arc<Self>,
        account: &AccountSettings,
        context: &Context<'_>,
    ) -> Option<Box<dyn Collector>> {
        let client = context.futures_client(account)?;
        let min_ratio = min_margin_ratio(account, "").ok()?;
        Some(Box::new(FuturesCollector {
            client,
            max_rows: context.settings.max_assets,
            min_ratio,
            valuation: context.shared.valuation.clone(),
            families: self,
            fetched: None,
            applied: None,
            ratio: None,
        }))
    }
}

/// A flex wallet total: name, help, and the figure.
type FlexTotal = (
    &'static str,
    &'static str,
    fn(&FlexWallet) -> Option<Decimal>,
);

/// The flex wallet's totals, label `{account}`, in USD.
const FLEX_TOTALS: &[FlexTotal] = &[
    ("kraken_futures_flex_balance_value", "Flex wallet: value of every collateral currency before haircuts (balanceValue), in USD.", |f| f.balance_value),
    ("kraken_futures_flex_portfolio_value", "Flex wallet: balance value plus unrealized P&L and funding (portfolioValue), in USD.", |f| f.portfolio_value),
    ("kraken_futures_flex_collateral_value", "Flex wallet: what the currencies count for as margin after haircuts (collateralValue), in USD.", |f| f.collateral_value),
    ("kraken_futures_flex_initial_margin", "Flex wallet: initial margin of open positions (initialMargin), in USD.", |f| f.initial_margin),
    ("kraken_futures_flex_initial_margin_with_orders", "Flex wallet: initial margin of open positions and open orders (initialMarginWithOrders), in USD.", |f| f.initial_margin_with_orders),
    ("kraken_futures_flex_maintenance_margin", "Flex wallet: maintenance margin of open positions (maintenanceMargin), in USD; positions are liquidated when margin equity falls below it.", |f| f.maintenance_margin),
    ("kraken_futures_flex_margin_equity", "Flex wallet: collateral value plus unrealized P&L as margin (marginEquity), in USD.", |f| f.margin_equity),
    ("kraken_futures_flex_available_margin", "Flex wallet: margin left to open positions (availableMargin), in USD.", |f| f.available_margin),
    ("kraken_futures_flex_pnl", "Flex wallet: unrealized P&L of open positions (pnl), in USD.", |f| f.pnl),
    ("kraken_futures_flex_unrealized_funding", "Flex wallet: unrealized funding of open positions (unrealizedFunding), in USD.", |f| f.unrealized_funding),
    ("kraken_futures_flex_total_unrealized", "Flex wallet: unrealized P&L and funding together (totalUnrealized), in USD.", |f| f.total_unrealized),
];

/// A margin wallet figure, labels `{account, wallet, currency}`.
type MarginFigure = (
    &'static str,
    &'static str,
    fn(&MarginWallet) -> Option<Decimal>,
);

const MARGIN_FIGURES: &[MarginFigure] = &[
    ("kraken_futures_margin_account_portfolio_value", "Single-collateral margin wallet: portfolio value (auxiliary.pv), in the wallet's currency.", |m| m.portfolio_value),
    ("kraken_futures_margin_account_available_funds", "Single-collateral margin wallet: available funds (auxiliary.af), in the wallet's currency.", |m| m.available_funds),
    ("kraken_futures_margin_account_pnl", "Single-collateral margin wallet: unrealized P&L (auxiliary.pnl), in the wallet's currency.", |m| m.pnl),
    ("kraken_futures_margin_account_initial_margin", "Single-collateral margin wallet: initial margin (marginRequirements.im), in the wallet's currency.", |m| m.initial_margin),
    ("kraken_futures_margin_account_maintenance_margin", "Single-collateral margin wallet: maintenance margin (marginRequirements.mm), in the wallet's currency.", |m| m.maintenance_margin),
];

/// The families the futures wallets feed.
pub struct FuturesFamilies {
    cash: AccountSeries,
    cash_value: AccountSeries,
    /// quantity, value, collateral, available.
    flex_currency: [AccountSeries; 4],
    /// One per [`FLEX_TOTALS`] entry.
    flex_totals: Vec<AccountSeries>,
    ratio: AccountSeries,
    ratio_min: AccountSeries,
    /// One per [`MARGIN_FIGURES`] entry.
    margin: Vec<AccountSeries>,
}

impl FuturesFamilies {
    /// Registers every futures family on `metrics` (once per [`Metrics`]).
    pub fn register(metrics: &Metrics) -> Self {
        let data = Scope::Data(METHOD);
        let family = |name: &str, help: &str, labels: &[&str]| {
            AccountSeries::register(metrics, data, name, help, labels)
        };
        Self {
            cash: family("kraken_futures_cash_balance", "Kraken Futures cash wallet: balance of the currency (upper case, as flex writes it), in units of the currency.", &["currency"]),
            cash_value: family("kraken_futures_cash_value", "kraken_futures_cash_balance valued in the quote currency at Kraken's last spot trade price, as of the last futures poll.", &["currency", "quote"]),
            flex_currency: [
                family("kraken_futures_flex_currency_quantity", "Flex wallet: quantity of the currency, in units of the currency.", &["currency"]),
                family("kraken_futures_flex_currency_value", "Flex wallet: value of the currency, in USD.", &["currency"]),
                family("kraken_futures_flex_currency_collateral", "Flex wallet: what the currency counts for as margin after its haircut, in USD.", &["currency"]),
                family("kraken_futures_flex_currency_available", "Flex wallet: quantity of the currency that is available (can be withdrawn or moved), in units of the currency.", &["currency"]),
            ],
            flex_totals: FLEX_TOTALS
                .iter()
                .map(|(name, help, _)| family(name, help, &[]))
                .collect(),
            ratio: family("kraken_futures_flex_margin_ratio", "Flex wallet: margin equity / maintenance margin; positions are liquidated as it falls to 1. Absent while no position is open (maintenance margin 0).", &[]),
            ratio_min: AccountSeries::register(metrics, Scope::Configured(METHOD), "kraken_futures_margin_ratio_min", "Configured minimum of kraken_futures_flex_margin_ratio (futures_min_margin_ratio); KrakenFuturesMarginLow fires below it.", &[]),
            margin: MARGIN_FIGURES
                .iter()
                .map(|(name, help, _)| family(name, help, &["wallet", "currency"]))
                .collect(),
        }
    }

    /// Sets the account's futures series to exactly what `accounts` holds (cash valued with
    /// `valuation`, when on, at its prices of the moment).
    pub fn publish(
        &self,
        metrics: &mut Changes<'_>,
        account: &str,
        accounts: &FuturesAccounts,
        valuation: Option<&Valuation>,
    ) {
        let cash: Vec<(Vec<String>, f64)> = accounts
            .cash
            .iter()
            .map(|(currency, amount)| (vec![currency.clone()], to_f64(*amount)))
            .collect();
        self.cash.replace(metrics, account, &cash);
        self.publish_cash_values(metrics, account, accounts, valuation);
        self.publish_wallets(metrics, account, accounts);
    }

    /// The cash wallet valued at the prices of the moment (none without `valuation`).
    pub fn publish_cash_values(
        &self,
        metrics: &mut Changes<'_>,
        account: &str,
        accounts: &FuturesAccounts,
        valuation: Option<&Valuation>,
    ) {
        let cash_values: Vec<(Vec<String>, f64)> = valuation
            .iter()
            .flat_map(|valuation| {
                accounts.cash.iter().flat_map(|(currency, amount)| {
                    valuation
                        .value_now(currency, *amount)
                        .into_iter()
                        .map(|(quote, value)| (vec![currency.clone(), quote], to_f64(value)))
                })
            })
            .collect();
        self.cash_value.replace(metrics, account, &cash_values);
    }

    /// The flex and margin wallets' series.
    fn publish_wallets(
        &self,
        metrics: &mut Changes<'_>,
        account: &str,
        accounts: &FuturesAccounts,
    ) {
        // No flex wallet: every flex series goes (no figure is exported).
        let no_flex = FlexWallet::default();
        let flex = accounts.flex.as_ref().unwrap_or(&no_flex);
        let figures: [fn(&crate::kraken::futures::FlexCurrency) -> Decimal; 4] = [
            |c| c.quantity,
            |c| c.value,
            |c| c.collateral,
            |c| c.available,
        ];
        for (family, figure) in self.flex_currency.iter().zip(figures) {
            let rows: Vec<(Vec<String>, f64)> = flex
                .currencies
                .iter()
                .map(|c| (vec![c.currency.clone()], to_f64(figure(c))))
                .collect();
            family.replace(metrics, account, &rows);
        }
        for (family, (_, _, figure)) in self.flex_totals.iter().zip(FLEX_TOTALS) {
            family.replace(metrics, account, &single(figure(flex)));
        }
        self.ratio
            .replace(metrics, account, &single(flex.margin_ratio()));

        for (family, (_, _, figure)) in self.margin.iter().zip(MARGIN_FIGURES) {
            let rows: Vec<(Vec<String>, f64)> = accounts
                .margin
                .iter()
                .filter_map(|wallet| {
                    let value = figure(wallet)?;
                    Some((
                        vec![wallet.wallet.clone(), wallet.currency.clone()],
                        to_f64(value),
                    ))
                })
                .collect();
            family.replace(metrics, account, &rows);
        }
    }
}

/// Polls one account's futures wallets with its futures key.
pub struct FuturesCollector {
    client: FuturesClient,
    max_rows: usize,
    min_ratio: Option<Decimal>,
    valuation: Option<Arc<Valuation>>,
    families: Arc<FuturesFamilies>,
    /// A new answer, to apply.
    fetched: Option<(FuturesAccounts, Fingerprint)>,
    /// The answer whose series are exported: its fingerprint tells an unchanged answer (not decoded
    /// or rendered again; its cash is valued again at the prices of the moment).
    applied: Option<(Fingerprint, FuturesAccounts)>,
    /// The flex margin ratio of the last successful call (`None` without open positions).
    ratio: Option<Decimal>,
}

/// One series without labels, or none.
fn single(value: Option<Decimal>) -> Vec<(Vec<String>, f64)> {
    value
        .map(|value| (Vec::new(), to_f64(value)))
        .into_iter()
        .collect()
}

impl Collector for FuturesCollector {
    fn endpoint(&self) -> &'static str {
        METHOD
    }

    fn permission(&self) -> &'static str {
        PERMISSION
    }

    fn own_key(&self) -> bool {
        true
    }

    fn hint(&self, err: &PollError) -> String {
        match err.reason {
            ErrorReason::InvalidKey => "Kraken Futures refused the key: futures_api_key must be a key created on the Kraken Futures site (Settings > API Keys, General API: Read Only), not a spot key, with its own private key in futures_api_secret_file".to_string(),
            ErrorReason::InvalidNonce => "another client uses this futures key with larger nonces; give the exporter its own futures key".to_string(),
            ErrorReason::InvalidSignature => "the futures private key does not belong to futures_api_key; copy it again into futures_api_secret_file".to_string(),
            ErrorReason::RateLimited => "the futures key's budget (about 500 cost units per 10 s) is used up, often by another client of the key; raise poll_interval or use a dedicated key".to_string(),
            ErrorReason::Http => "check network access to futures_api_url (DNS, firewall, proxy) and Kraken's status page".to_string(),
            reason => reason.hint().to_string(),
        }
    }

    fn configure(&self, account: &str, metrics: &mut Changes<'_>) {
        self.families
            .ratio_min
            .replace(metrics, account, &single(self.min_ratio));
    }

    fn fetch<'a>(&'a mut self, _spot: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            let last = self.applied.as_ref().map(|(fingerprint, _)| *fingerprint);
            let answer = self.client.accounts_unless(self.max_rows, last).await?;
            let rows = |accounts: &FuturesAccounts| {
                accounts.cash.len()
                    + accounts.margin.len()
                    + accounts.flex.as_ref().map_or(0, |f| f.currencies.len())
            };
            let count = match &answer {
                Some((accounts, _)) => rows(accounts),
                None => self
                    .applied
                    .as_ref()
                    .map_or(0, |(_, accounts)| rows(accounts)),
            };
            self.fetched = answer;
            Ok(count)
        })
    }

    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>) {
        let valuation = self.valuation.as_deref();
        if let Some((accounts, fingerprint)) = self.fetched.take() {
            self.ratio = accounts.flex.as_ref().and_then(|flex| flex.margin_ratio());
            self.families
                .publish(metrics, account, &accounts, valuation);
            self.applied = Some((fingerprint, accounts));
        } else if let Some((_, accounts)) = &self.applied {
            self.families
                .publish_cash_values(metrics, account, accounts, valuation);
        }
    }

    fn comparisons(&self) -> Vec<super::Comparison> {
        super::Comparison::of("futures margin ratio", self.ratio, self.min_ratio)
    }

    /// The stale series go, and with them the fingerprint: the next answer is applied whatever it is.
    fn clear(&mut self, account: &str, metrics: &mut Changes<'_>) {
        self.applied = None;
        metrics.clear_endpoint(account, METHOD, false);
    }
}
