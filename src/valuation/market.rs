//! What balances are worth in the configured quote currencies.
//!
//! Prices come from Kraken's public `Ticker` (last trade) for the pairs of `AssetPairs`, with asset
//! names normalised like the balance labels. An asset is priced by the first route that works:
//!
//! 1. the quote itself (1), after mapping earn variants to their underlying asset: the `asset` label
//!    already drops the family suffix (`DOT.S` -> `DOT`, `XBT.M` -> `XBT`), and `ETH2` is valued as `ETH`;
//!    tokenized assets (`AAPLx.T`) keep their own code and are priced by their own pair;
//! 2. the direct pair `ASSET/QUOTE`, or the inverse pair `QUOTE/ASSET` (1 / price);
//! 3. a stablecoin's peg (`USDT`, `USDC`, ... -> `USD`; `EURT`, ... -> `EUR`) when it has no pair of its
//!    own, then the peg currency's route to the quote;
//! 4. one hop through a liquid hub, in this order: `XBT`, `ETH`, `USD`, `EUR`, `USDT`, `USDC`
//!    (`ASSET/HUB` x `HUB/QUOTE`, each leg direct or inverse).
//!
//! All arithmetic is in `Decimal`; values become `f64` only for the gauges.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use rust_decimal::Decimal;

use crate::kraken::assets::AssetNames;
use crate::kraken::public::PairInfo;
use crate::kraken::{AssetBalance, AssetLabels};

/// Stablecoins and the currency they are pegged to.
const PEGS: &[(&str, &str)] = &[
    ("USDT", "USD"),
    ("USDC", "USD"),
    ("DAI", "USD"),
    ("PYUSD", "USD"),
    ("USDG", "USD"),
    ("RLUSD", "USD"),
    ("EURT", "EUR"),
    ("EURC", "EUR"),
    ("EURR", "EUR"),
];

/// Hubs for one-hop prices, most liquid first.
const HUBS: &[&str] = &["XBT", "ETH", "USD", "EUR", "USDT", "USDC"];

/// Assets valued as another (`ETH2` is staked ETH).
const UNDERLYING: &[(&str, &str)] = &[("ETH2", "ETH")];

/// The asset whose price values `asset`.
pub fn underlying(asset: &str) -> &str {
    UNDERLYING
        .iter()
        .find(|(from, _)| *from == asset)
        .map_or(asset, |(_, to)| to)
}

/// How a price was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Same,
    Direct,
    Inverse,
    Peg(&'static str),
    Hop(&'static str),
}

/// Last trade prices by base and quote, in label names: looked up by `&str` without building a key,
/// and an asset in no pair at all (most of a long tail of tokens) is unpriced at once.
#[derive(Debug, Clone, Default)]
pub struct Market {
    prices: HashMap<String, HashMap<String, Decimal>>,
    /// Every asset that is the base or the quote of a priced pair.
    traded: HashSet<String>,
}

impl Market {
    /// From `AssetPairs` and `Ticker` (keyed by pair key or pair altname), names mapped by `names`.
    pub fn from_kraken(
        pairs: &BTreeMap<String, PairInfo>,
        last_prices: &BTreeMap<String, Decimal>,
        names: &AssetNames,
    ) -> Self {
        let mut market = Self::default();
        for (key, pair) in pairs {
            let price = last_prices
                .get(key)
                .or_else(|| pair.altname.as_ref().and_then(|alt| last_prices.get(alt)));
            if let Some(price) = price {
                market.insert(names.modern(&pair.base), names.modern(&pair.quote), *price);
            }
        }
        market
    }

    fn insert(&mut self, base: String, quote: String, price: Decimal) {
        self.traded.insert(base.clone());
        self.traded.insert(quote.clone());
        self.prices.entry(base).or_default().insert(quote, price);
    }

    /// The price of the pair `base`/`quote`, if Kraken has it.
    fn get(&self, base: &str, quote: &str) -> Option<Decimal> {
        self.prices.get(base)?.get(quote).copied()
    }

    /// A market from (base, quote, price) triples, for tests and the simulator.
    pub fn from_prices<'a>(triples: impl IntoIterator<Item = (&'a str, &'a str, Decimal)>) -> Self {
        let mut market = Self::default();
        for (base, quote, price) in triples {
            market.insert(base.to_string(), quote.to_string(), price);
        }
        market
    }

    fn leg(&self, from: &str, to: &str) -> Option<Decimal> {
        if from == to {
            return Some(Decimal::ONE);
        }
        if let Some(price) = self.get(from, to) {
            return Some(price);
        }
        let inverse = self.get(to, from)?;
        Decimal::ONE.checked_div(inverse)
    }

    fn has_pair(&self, a: &str, b: &str) -> bool {
        self.get(a, b).is_some() || self.get(b, a).is_some()
    }

    /// `amount` of `asset` (a label value) in each of `quotes` that has a price (and no overflow).
    pub fn values_of<'a>(
        &'a self,
        quotes: &'a [String],
        asset: &'a str,
        amount: Decimal,
    ) -> impl Iterator<Item = (&'a String, Decimal)> + 'a {
        quotes.iter().filter_map(move |quote| {
            let (price, _) = self.price(asset, quote)?;
            Some((quote, amount.checked_mul(price)?))
        })
    }

    /// The price of one unit of `asset` (a label value) in `quote`, and how it was found.
    pub fn price(&self, asset: &str, quote: &str) -> Option<(Decimal, Route)> {
        let asset = underlying(asset);
        if asset == quote {
            return Some((Decimal::ONE, Route::Same));
        }
        let peg = PEGS.iter().find(|(coin, _)| *coin == asset);
        if peg.is_none() && !self.traded.contains(asset) {
            return None;
        }
        if let Some(price) = self.get(asset, quote) {
            return Some((price, Route::Direct));
        }
        if self.get(quote, asset).is_some() {
            return self.leg(asset, quote).map(|p| (p, Route::Inverse));
        }
        if let Some((_, peg)) = peg {
            if *peg == quote || self.has_pair(peg, quote) {
                return self.leg(peg, quote).map(|p| (p, Route::Peg(peg)));
            }
        }
        HUBS.iter()
            .filter(|hub| **hub != asset && **hub != quote)
            .find_map(|hub| {
                if !self.has_pair(asset, hub) || !self.has_pair(hub, quote) {
                    return None;
                }
                let price = self.leg(asset, hub)?.checked_mul(self.leg(hub, quote)?)?;
                Some((price, Route::Hop(hub)))
            })
    }
}

/// The price of one unit of an asset (label value) in a quote currency.
pub type AssetPrice = (String, String, Decimal);

/// One valued balance row.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRow {
    pub labels: AssetLabels,
    pub quote: String,
    pub value: Decimal,
    pub available_value: Decimal,
}

/// One valued spendable amount.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendableValue {
    pub asset: String,
    pub quote: String,
    pub value: Decimal,
}

/// The values of one account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountValues {
    pub rows: Vec<ValueRow>,
    /// The spendable amounts valued (those with a price).
    pub spendable: Vec<SpendableValue>,
    /// Balance rows (asset and family) without a price in at least one quote currency.
    pub unpriced: usize,
}

/// What one account holds: its balance rows and its spendable amount per asset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holdings {
    pub rows: Vec<HeldRow>,
    pub spendable: Vec<(String, Decimal)>,
}

/// One balance row as valuation keeps it between prices: the two amounts it values, not the whole
/// row (kept for every account, so 1,000 accounts of 50 assets keep 50,000 of them), and its labels
/// interned (those 50,000 rows name a few dozen assets: one shared copy each, not two per row).
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRow {
    pub labels: Arc<AssetLabels>,
    pub balance: Decimal,
    pub available: Decimal,
}

impl HeldRow {
    pub fn new(labels: AssetLabels, row: &AssetBalance) -> Self {
        Self {
            labels: intern(&labels),
            balance: row.balance,
            available: row.available(),
        }
    }
}

/// The one shared copy of a row's labels. Every pair Kraken ever answered stays (its list of
/// assets and their suffixes: a few hundred at most, the price of sharing them).
fn intern(labels: &AssetLabels) -> Arc<AssetLabels> {
    static KNOWN: Mutex<BTreeSet<Arc<AssetLabels>>> = Mutex::new(BTreeSet::new());
    crate::sync::intern(&KNOWN, labels, |new| Arc::new(new.clone()))
}

/// The valued assets of `holdings` (each once).
fn valued_assets(holdings: &Holdings) -> BTreeSet<String> {
    holdings
        .rows
        .iter()
        .filter(|row| row.labels.family.is_valued())
        .map(|row| row.labels.asset.clone())
        .collect()
}

/// Moves one account's count in `held` from the assets it held `before` to those it holds now.
fn count_held(
    held: &mut BTreeMap<String, usize>,
    before: Option<BTreeSet<String>>,
    now: BTreeSet<String>,
) {
    for asset in before.unwrap_or_default() {
        if let Some(count) = held.get_mut(&asset) {
            *count -= 1;
            if *count == 0 {
                held.remove(&asset);
            }
        }
    }
    for asset in now {
        *held.entry(asset).or_insert(0) += 1;
    }
}

/// Values `holdings` in every quote; unpriced rows get no value row.
pub fn value_holdings(
    market: &Market,
    quotes: &[String],
    holdings: &Holdings,
) -> (AccountValues, Vec<(String, String)>) {
    let mut values = AccountValues::default();
    let mut missing = Vec::new();
    for (asset, amount) in &holdings.spendable {
        for (quote, value) in market.values_of(quotes, asset, *amount) {
            values.spendable.push(SpendableValue {
                asset: asset.clone(),
                quote: quote.clone(),
                value,
            });
        }
    }
    for row in holdings.rows.iter().filter(|r| r.labels.family.is_valued()) {
        let labels = &*row.labels;
        let mut priced_everywhere = true;
        for quote in quotes {
            let priced = market.price(&labels.asset, quote).and_then(|(price, _)| {
                Some((
                    row.balance.checked_mul(price)?,
                    row.available.checked_mul(price)?,
                ))
            });
            match priced {
                Some((value, available_value)) => values.rows.push(ValueRow {
                    labels: labels.clone(),
                    quote: quote.clone(),
                    value,
                    available_value,
                }),
                None => {
                    priced_everywhere = false;
                    missing.push((labels.asset.clone(), quote.clone()));
                }
            }
        }
        if !priced_everywhere {
            values.unpriced += 1;
        }
    }
    (values, missing)
}

/// The last balances of every account and the last market, so either can change on its own.
pub struct Valuation {
    quotes: Vec<String>,
    market: RwLock<Option<Market>>,
    /// Shared, so new prices value every account without copying every account's rows.
    holdings: Mutex<BTreeMap<String, Arc<Holdings>>>,
    /// Each valued asset held, with how many accounts hold it: kept as holdings change, so the
    /// prices of what is held cost the assets held, not every account's rows.
    held: Mutex<BTreeMap<String, usize>>,
    warned: Mutex<crate::warn_once::WarnOnce<(String, String)>>,
}

impl Valuation {
    pub fn new(quotes: Vec<String>) -> Self {
        Self {
            quotes,
            market: RwLock::new(None),
            holdings: Mutex::new(BTreeMap::new()),
            held: Mutex::new(BTreeMap::new()),
            warned: Mutex::new(crate::warn_once::WarnOnce::default()),
        }
    }

    /// Records an account's balances; returns its values and the prices of every held asset, or
    /// `None` before the first prices.
    pub fn set_holdings(
        &self,
        account: &str,
        holdings: Holdings,
    ) -> Option<(AccountValues, Vec<AssetPrice>)> {
        let market = crate::sync::read(&self.market);
        let values = market.as_ref().map(|m| self.value(account, m, &holdings));
        let added = valued_assets(&holdings);
        let before =
            crate::sync::lock(&self.holdings).insert(account.to_string(), Arc::new(holdings));
        let mut held = crate::sync::lock(&self.held);
        count_held(&mut held, before.as_deref().map(valued_assets), added);
        let prices = market.as_ref().map(|m| self.held_prices(m, &held));
        values.zip(prices)
    }

    /// The price of every held asset in every quote (where one is found).
    fn held_prices(&self, market: &Market, held: &BTreeMap<String, usize>) -> Vec<AssetPrice> {
        held.keys()
            .flat_map(|asset| {
                self.quotes.iter().filter_map(|quote| {
                    market
                        .price(asset, quote)
                        .map(|(price, _)| (asset.to_string(), quote.clone(), price))
                })
            })
            .collect()
    }

    /// `amount` of `asset` (a label value) in every quote at the prices of the moment: (quote,
    /// value) where a price is found; empty before the first prices.
    pub fn value_now(&self, asset: &str, amount: Decimal) -> Vec<(String, Decimal)> {
        let market = crate::sync::read(&self.market);
        let Some(market) = market.as_ref() else {
            return Vec::new();
        };
        market
            .values_of(&self.quotes, asset, amount)
            .map(|(quote, value)| (quote.clone(), value))
            .collect()
    }

    /// Forgets an account's balances (they went stale).
    pub fn clear_holdings(&self, account: &str) {
        let before = crate::sync::lock(&self.holdings).remove(account);
        let mut held = crate::sync::lock(&self.held);
        count_held(
            &mut held,
            before.as_deref().map(valued_assets),
            BTreeSet::new(),
        );
    }

    /// Installs new prices; returns every account's values and the price of every held asset.
    pub fn set_market(&self, market: Market) -> (BTreeMap<String, AccountValues>, Vec<AssetPrice>) {
        let holdings = crate::sync::lock(&self.holdings).clone();
        let values = holdings
            .iter()
            .map(|(account, rows)| (account.clone(), self.value(account, &market, rows)))
            .collect();
        let prices = self.held_prices(&market, &crate::sync::lock(&self.held));
        *crate::sync::write(&self.market) = Some(market);
        (values, prices)
    }

    fn value(&self, account: &str, market: &Market, holdings: &Holdings) -> AccountValues {
        let (values, missing) = value_holdings(market, &self.quotes, holdings);
        let mut warned = crate::sync::lock(&self.warned);
        for (asset, quote) in missing {
            match warned.check((asset.clone(), quote.clone())) {
                crate::warn_once::Warn::Now => tracing::warn!(account, asset = ?asset, quote = ?quote, "no price for this asset in this quote currency (no direct, inverse, peg or one-hop pair); it gets no value series"),
                crate::warn_once::Warn::LimitReached => tracing::warn!(
                    limit = crate::warn_once::WARN_ONCE_LIMIT,
                    "more assets without a price than are named one by one; the others are not named (kraken_unpriced_assets counts them)"
                ),
                crate::warn_once::Warn::Quiet => {}
            }
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::assets::classify;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn market() -> Market {
        Market::from_prices([
            ("XBT", "USD", dec("95000.10")),
            ("ETH", "XBT", dec("0.03579")),
            ("EUR", "USD", dec("1.0795")),
            ("ADA", "EUR", dec("0.6543")),
            ("DOT", "USD", dec("7.1234")),
            ("USDT", "USD", dec("0.9998")),
            ("AAPLx", "USD", dec("231.45")),
        ])
    }

    #[test]
    fn every_route_prices_exactly() {
        let m = market();
        assert_eq!(m.price("USD", "USD"), Some((Decimal::ONE, Route::Same)));
        assert_eq!(
            m.price("XBT", "USD"),
            Some((dec("95000.10"), Route::Direct))
        );
        // Inverse: USD in EUR is 1 / 1.0795, to Decimal's 28 digits.
        assert_eq!(
            m.price("USD", "EUR"),
            Some((Decimal::ONE / dec("1.0795"), Route::Inverse))
        );
        // Peg: USDC has no pair, USDT uses its own.
        assert_eq!(
            m.price("USDC", "USD"),
            Some((Decimal::ONE, Route::Peg("USD")))
        );
        assert_eq!(m.price("USDT", "USD"), Some((dec("0.9998"), Route::Direct)));
        assert_eq!(
            m.price("USDC", "EUR"),
            Some((Decimal::ONE / dec("1.0795"), Route::Peg("USD")))
        );
        // One hop: ETH -> XBT -> USD; ADA -> EUR -> USD.
        assert_eq!(
            m.price("ETH", "USD"),
            Some((dec("0.03579") * dec("95000.10"), Route::Hop("XBT")))
        );
        assert_eq!(
            m.price("ADA", "USD"),
            Some((dec("0.6543") * dec("1.0795"), Route::Hop("EUR")))
        );
        // Underlying: ETH2 is ETH.
        assert_eq!(m.price("ETH2", "USD"), m.price("ETH", "USD"));
        // Tokenized assets by their own pair.
        assert_eq!(
            m.price("AAPLx", "USD"),
            Some((dec("231.45"), Route::Direct))
        );
        // Nothing reaches KFEE.
        assert_eq!(m.price("KFEE", "USD"), None);
    }

    /// A held row of one unit of `key`, nothing on hold.
    fn one_of(key: &str) -> HeldRow {
        HeldRow::new(
            classify(key),
            &AssetBalance {
                key: key.to_string(),
                balance: Decimal::ONE,
                hold_trade: Decimal::ZERO,
                credit: Decimal::ZERO,
                credit_used: Decimal::ZERO,
            },
        )
    }

    #[test]
    fn the_prices_of_held_assets_follow_every_accounts_holdings() {
        let holding = |keys: &[&str]| Holdings {
            rows: keys.iter().map(|key| one_of(key)).collect(),
            spendable: Vec::new(),
        };
        let assets = |prices: &[AssetPrice]| -> Vec<String> {
            prices.iter().map(|(asset, _, _)| asset.clone()).collect()
        };
        let valuation = Valuation::new(vec!["USD".to_string()]);
        valuation.set_market(market());
        let (_, prices) = valuation
            .set_holdings("a", holding(&["XXBT", "DOT"]))
            .unwrap();
        assert_eq!(assets(&prices), ["DOT", "XBT"]);
        let (_, prices) = valuation
            .set_holdings("b", holding(&["XXBT", "XBT.M"]))
            .unwrap();
        assert_eq!(assets(&prices), ["DOT", "XBT"]);
        // a sells its bitcoin: b still holds some; nobody else holds DOT once a stops.
        let (_, prices) = valuation.set_holdings("a", holding(&["DOT"])).unwrap();
        assert_eq!(assets(&prices), ["DOT", "XBT"]);
        valuation.clear_holdings("a");
        let (_, prices) = valuation.set_market(market());
        assert_eq!(assets(&prices), ["XBT"]);
        let (_, prices) = valuation.set_holdings("b", holding(&["ETH"])).unwrap();
        assert_eq!(assets(&prices), ["ETH"]);
    }

    #[test]
    fn rows_of_the_same_asset_and_family_share_one_copy_of_their_labels() {
        // Two accounts' rows of bitcoin (one under its legacy code): one copy; staked: another.
        let (a, b, staked) = (one_of("XXBT"), one_of("XBT"), one_of("XBT.S"));
        assert!(Arc::ptr_eq(&a.labels, &b.labels));
        assert_eq!(a.labels.asset, "XBT");
        assert!(!Arc::ptr_eq(&a.labels, &staked.labels));
        assert_eq!(staked.labels.asset, "XBT");
    }

    #[test]
    fn holdings_are_valued_exactly_and_unpriced_ones_are_counted() {
        let balance = |key: &str, amount: &str, hold: &str| {
            HeldRow::new(
                classify(key),
                &AssetBalance {
                    key: key.to_string(),
                    balance: dec(amount),
                    hold_trade: dec(hold),
                    credit: Decimal::ZERO,
                    credit_used: Decimal::ZERO,
                },
            )
        };
        let holdings = Holdings {
            rows: vec![
                balance("XXBT", "1.2435000000", "0.8423000000"),
                balance("DOT.S", "101.1234567890", "0"),
                balance("KFEE", "1000.00", "0"),
            ],
            spendable: vec![
                ("XBT".to_string(), dec("0.4012")),
                ("KFEE".to_string(), dec("1000.00")),
            ],
        };
        let quotes = vec!["USD".to_string(), "EUR".to_string()];
        let (values, missing) = value_holdings(&market(), &quotes, &holdings);
        // Spendable amounts are valued like rows; KFEE (fee credits) is never valued, nor counted
        // as unpriced.
        let spendable: Vec<(&str, &str, Decimal)> = values
            .spendable
            .iter()
            .map(|s| (s.asset.as_str(), s.quote.as_str(), s.value))
            .collect();
        assert_eq!(
            spendable,
            vec![
                ("XBT", "USD", dec("0.4012") * dec("95000.10")),
                // XBT/EUR is routed here (see every_route_prices_exactly for the route).
                (
                    "XBT",
                    "EUR",
                    dec("0.4012") * market().price("XBT", "EUR").unwrap().0
                ),
            ]
        );
        let find = |asset: &str, family: &str, quote: &str| {
            values
                .rows
                .iter()
                .find(|r| {
                    r.labels.asset == asset && r.labels.family.label() == family && r.quote == quote
                })
                .cloned()
                .unwrap()
        };
        let xbt = find("XBT", "spot", "USD");
        assert_eq!(xbt.value, dec("118132.624350000000"));
        assert_eq!(xbt.available_value, dec("0.4012") * dec("95000.10"));
        let dot = find("DOT", "staked", "USD");
        assert_eq!(dot.value, dec("720.34283209076260"));
        let dot_eur = find("DOT", "staked", "EUR");
        assert_eq!(
            dot_eur.value,
            dec("101.1234567890") * (dec("7.1234") * (Decimal::ONE / dec("1.0795")))
        );
        assert_eq!(values.unpriced, 0);
        assert_eq!(values.rows.len(), 4);
        assert_eq!(missing, vec![]);
    }

    #[test]
    fn fee_credits_are_never_valued_even_where_a_price_exists() {
        let market = Market::from_prices([("KFEE", "USD", dec("0.01")), ("ZUSD", "USD", dec("1"))]);
        let row = |key: &str, amount: &str| {
            HeldRow::new(
                classify(key),
                &AssetBalance {
                    key: key.to_string(),
                    balance: dec(amount),
                    hold_trade: Decimal::ZERO,
                    credit: Decimal::ZERO,
                    credit_used: Decimal::ZERO,
                },
            )
        };
        let holdings = Holdings {
            rows: vec![row("KFEE", "7328.19"), row("ZUSD", "21.9050")],
            spendable: vec![("USD".to_string(), dec("21.9050"))],
        };
        let (values, missing) = value_holdings(&market, &["USD".to_string()], &holdings);
        let valued: Vec<&str> = values
            .rows
            .iter()
            .map(|r| r.labels.asset.as_str())
            .collect();
        assert_eq!(valued, ["USD"]);
        assert_eq!((values.unpriced, missing), (0, vec![]));
    }
}
