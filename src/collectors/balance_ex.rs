//! `BalanceEx` -> the balance families (`kraken_balance*{account, asset, family}`), what can be spent
//! per asset (`kraken_spendable{account, asset}`), their thresholds, and (through the valuation's
//! families) their values and the prices of held assets.
//!
//! The balance and spendable families are rendered by hand, one chunk per account and family (see
//! `exposition`): thousands of series, rendered once per successful poll whose answer changed. An
//! answer the same byte for byte as the one applied last (a treasury account between movements: most
//! polls) is recognised by its [`Fingerprint`] and neither decoded nor rendered again; the poll still
//! counts as a success (`kraken_up`, the last-success time and the poll's duration move on). Once the
//! series are cleared (stale, not offered) the next answer is applied whatever it is.
//!
//! A configured minimum always has the figure it is compared with: after each successful poll, an
//! asset with a `min_spendable` and no spot or auto-earn row exports `kraken_spendable` 0, and an
//! asset and family with a `min_available` and no row exports its balance series at 0. Kraken leaves
//! rows out (never-funded accounts, assets spent to nothing, retired `.F` rows); without the 0 the
//! shipped rules would compare a minimum with nothing and never page the account that holds none.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::{Collector, Comparison, Context, Endpoint, EndpointFamilies, Fetch, Shared};
use crate::config::{AccountSettings, MinAvailable, MinSpendable};
use crate::exposition::{render_labels, to_f64, Encoded, GaugeFamily};
use crate::kraken::assets::{label_all_with, LabelledKeys};
use crate::kraken::balance_ex::{out_of_range, METHOD, PERMISSION};
use crate::kraken::{
    AssetBalance, AssetLabels, Balances, Fingerprint, KrakenClient, RebaseMultiplier,
};
use crate::metrics::{AccountSeries, Changes, Metrics, RenderedFamilies, Scope};
use crate::spendable::spendable_by_asset;
use crate::valuation::{HeldRow, Holdings};

/// The table's line: every account polls its balances.
pub(super) const ENDPOINT: Endpoint = Endpoint {
    method: METHOD,
    permission: PERMISSION,
    cost: |_| 1,
    decides_up: true,
    register: |metrics| Arc::new(BalanceFamilies::register(metrics)),
    polls: |_| true,
    interval: super::every_poll,
    // Its minimums (min_available, min_spendable) are the configuration's own: every account has
    // balances.
    options: crate::config::OptionSpec::NONE,
    thresholds: |_| Vec::new(),
};

impl EndpointFamilies for BalanceFamilies {
    fn collector(
        self: Arc<Self>,
        account: &AccountSettings,
        context: &Context<'_>,
    ) -> Option<Box<dyn Collector>> {
        Some(Box::new(BalanceExCollector::new(account, context, self)))
    }
}

/// A balance family: its name and help, which amount of a balance it exports, and for which rows.
struct BalanceFamily {
    family: GaugeFamily,
    amount: fn(&AssetBalance) -> Decimal,
    /// Whether a row has a series in the family (the credit families: only rows with a credit line,
    /// which few accounts have; zeros for every other row were a fifth of a large scrape).
    exported: fn(&AssetBalance) -> bool,
}

/// Whether a row has a credit line (credit or credit used that is not 0).
fn has_credit(balance: &AssetBalance) -> bool {
    !balance.credit.is_zero() || !balance.credit_used.is_zero()
}

/// The families with the labels `{account, asset, family}`, one series per asset of each account.
const BALANCE_FAMILIES: &[BalanceFamily] = &[
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance", help: "Total balance of the asset as reported by Kraken BalanceEx (including held amounts), in units of the asset. KFEE (family fee_credits) is fee credits: they pay trading fees only." },
        amount: |b| b.balance,
        exported: |_| true,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_available", help: "Amount of the asset available to trade or withdraw: balance + credit - credit_used - hold_trade, in units of the asset." },
        amount: AssetBalance::available,
        exported: |_| true,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_credit", help: "Credit line granted in the asset, in units of the asset; only rows with a credit line (credit or credit used not 0) have one." },
        amount: |b| b.credit,
        exported: has_credit,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_credit_used", help: "Part of the credit line in use, in units of the asset; only rows with a credit line (credit or credit used not 0) have one." },
        amount: |b| b.credit_used,
        exported: has_credit,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_hold", help: "Amount of the asset on hold for open orders (hold_trade), in units of the asset." },
        amount: |b| b.hold_trade,
        exported: |_| true,
    },
];

/// The family with the labels `{account, asset}`: what can be spent of each asset.
const SPENDABLE_FAMILY: GaugeFamily = GaugeFamily {
    name: "kraken_spendable",
    help: "What can be spent of the asset: balance + credit - credit_used - hold_trade summed over its spot and auto-earn rows, in units of the asset; fee credits and fiat on hold never count. Alert on this, not on the per-row available amount.",
};

/// The families `BalanceEx` feeds, shared by every account's collector.
pub struct BalanceFamilies {
    spendable: RenderedFamilies,
    balances: RenderedFamilies,
    available_min: AccountSeries,
    spendable_min: AccountSeries,
}

impl BalanceFamilies {
    /// Registers them; the spendable family is served first, then the balance families.
    pub fn register(metrics: &Metrics) -> Self {
        let balance_families: Vec<GaugeFamily> =
            BALANCE_FAMILIES.iter().map(|f| f.family).collect();
        Self {
            spendable: RenderedFamilies::register(metrics, Scope::Data(METHOD), &[SPENDABLE_FAMILY]),
            balances: RenderedFamilies::register(metrics, Scope::Data(METHOD), &balance_families),
            available_min: AccountSeries::register(metrics, Scope::Configured(METHOD), "kraken_balance_available_min", "Configured minimum available amount of the asset (min_available); alert when kraken_balance_available falls below it.", &["asset", "family"]),
            spendable_min: AccountSeries::register(metrics, Scope::Configured(METHOD), "kraken_spendable_min", "Configured minimum spendable amount of the asset (min_spendable); alert when kraken_spendable falls below it.", &["asset"]),
        }
    }

    /// Replaces the account's balance series with these: new values set, vanished assets removed.
    pub fn replace_balances<'a, I>(&self, metrics: &mut Changes<'_>, account: &str, balances: I)
    where
        I: IntoIterator<Item = (&'a AssetLabels, &'a AssetBalance)>,
    {
        let rows: Vec<(String, &AssetBalance)> = balances
            .into_iter()
            .map(|(labels, balance)| {
                let rendered = render_labels(&[
                    ("account", account),
                    ("asset", &labels.asset),
                    ("family", labels.family.label()),
                ]);
                (rendered, balance)
            })
            .collect();
        let chunks = BALANCE_FAMILIES
            .iter()
            .map(|f| {
                f.family.render(
                    rows.iter()
                        .filter(|(_, balance)| (f.exported)(balance))
                        .map(|(labels, balance)| (labels.as_str(), to_f64((f.amount)(balance)))),
                )
            })
            .collect();
        self.balances.replace(metrics, account, chunks);
    }

    /// Replaces the account's `kraken_spendable` series with these (asset, amount) pairs.
    pub fn replace_spendable(
        &self,
        metrics: &mut Changes<'_>,
        account: &str,
        spendable: &[(String, Decimal)],
    ) {
        let rows: Vec<(String, f64)> = spendable
            .iter()
            .map(|(asset, amount)| {
                (
                    render_labels(&[("account", account), ("asset", asset)]),
                    to_f64(*amount),
                )
            })
            .collect();
        let chunk: Encoded =
            SPENDABLE_FAMILY.render(rows.iter().map(|(labels, value)| (labels.as_str(), *value)));
        self.spendable.replace(metrics, account, vec![chunk]);
    }

    /// Exports the account's thresholds, replacing those exported before.
    fn set_minimums(
        &self,
        metrics: &mut Changes<'_>,
        account: &str,
        min_available: &[MinAvailable],
        min_spendable: &[MinSpendable],
    ) {
        let rows: Vec<(Vec<String>, f64)> = min_available
            .iter()
            .map(|m| {
                let labels = vec![m.asset.clone(), m.family.label().to_string()];
                (labels, to_f64(m.amount))
            })
            .collect();
        self.available_min.replace(metrics, account, &rows);
        let rows: Vec<(Vec<String>, f64)> = min_spendable
            .iter()
            .map(|m| (vec![m.asset.clone()], to_f64(m.amount)))
            .collect();
        self.spendable_min.replace(metrics, account, &rows);
    }
}

/// A threshold's asset as the asset-list check needs it: account, kind (`min_spendable`,
/// `min_available`) and asset; no key or secret.
pub type ThresholdAsset = (String, &'static str, String);

/// The asset of every threshold of `accounts`.
pub fn threshold_assets(accounts: &[AccountSettings]) -> Vec<ThresholdAsset> {
    accounts
        .iter()
        .flat_map(|account| {
            let spendable = account
                .min_spendable
                .iter()
                .map(|m| ("min_spendable", &m.asset));
            let available = account
                .min_available
                .iter()
                .map(|m| ("min_available", &m.asset));
            spendable
                .chain(available)
                .map(|(kind, asset)| (account.name.clone(), kind, asset.clone()))
        })
        .collect()
}

/// One warning per threshold whose asset Kraken does not list (`listed`: the `asset` label values of
/// `GET /0/public/Assets`, see [`crate::kraken::assets::listed_labels`]), naming the nearest codes.
/// Such a threshold compares its minimum with a figure of 0 for ever, so it pages until corrected.
pub fn unlisted_threshold_assets(
    thresholds: &[ThresholdAsset],
    listed: &std::collections::BTreeSet<String>,
) -> Vec<String> {
    thresholds
        .iter()
        .filter(|(_, _, asset)| !listed.contains(asset))
        .map(|(account, kind, asset)| {
            let nearest = crate::kraken::assets::nearest_codes(asset, listed, 3);
            format!(
                "account {account:?}: {kind} asset {asset:?} is not an asset Kraken lists, so its figure stays 0 and the threshold pages; did you mean {}? Use the code of the asset label (e.g. XBT for bitcoin)",
                nearest.join(", ")
            )
        })
        .collect()
}

/// Each minimum with the figure it is compared with: spendable per asset, and the available amount
/// of the row of each `min_available` asset and family (0 without one, as exported).
fn compare<'a>(
    min_spendable: &[MinSpendable],
    spendable: &[(String, Decimal)],
    min_available: &[MinAvailable],
    rows: impl Iterator<Item = (&'a AssetLabels, &'a AssetBalance)> + Clone,
) -> Vec<Comparison> {
    let spendable_of = |asset: &str| {
        spendable
            .iter()
            .find(|(a, _)| a == asset)
            .map_or(Decimal::ZERO, |(_, amount)| *amount)
    };
    let available_of = |minimum: &MinAvailable| {
        rows.clone()
            .find(|(labels, _)| labels.asset == minimum.asset && labels.family == minimum.family)
            .and_then(|(_, row)| row.checked_available())
            .unwrap_or(Decimal::ZERO)
    };
    min_spendable
        .iter()
        .map(|m| Comparison {
            what: format!("spendable {}", m.asset),
            figure: spendable_of(&m.asset),
            minimum: m.amount,
        })
        .chain(min_available.iter().map(|m| Comparison {
            what: format!("available {} ({})", m.asset, m.family.label()),
            figure: available_of(m),
            minimum: m.amount,
        }))
        .collect()
}

/// Polls `BalanceEx` and exports every row as Kraken sent it.
pub struct BalanceExCollector {
    rebase_multiplier: Option<RebaseMultiplier>,
    max_assets: usize,
    shared: Shared,
    families: Arc<BalanceFamilies>,
    min_available: Vec<MinAvailable>,
    min_spendable: Vec<MinSpendable>,
    warned_collisions: crate::warn_once::WarnOnce<String>,
    fetched: Option<Fetched>,
    /// The fingerprint of the answer whose series are exported, with its row count: an answer the
    /// same byte for byte is neither decoded nor applied again (only the poll's health moves). `None`
    /// once the series are cleared, so the next answer is applied whatever it is.
    applied: Option<(Fingerprint, usize)>,
    /// Each minimum with its figure, as of the last successful call.
    compared: Vec<Comparison>,
}

/// One answer with everything computed from it before it is handed to the metrics.
struct Fetched {
    fingerprint: Fingerprint,
    balances: Balances,
    labelled: LabelledKeys,
    spendable: Vec<(String, Decimal)>,
    /// Asset and family of each `min_available` the answer has no row for: exported at 0.
    missing: Vec<AssetLabels>,
}

/// `spendable` with a 0 for every asset of `minimums` it lacks, still sorted by asset.
fn with_minimum_assets(
    mut spendable: Vec<(String, Decimal)>,
    minimums: &[MinSpendable],
) -> Vec<(String, Decimal)> {
    let before = spendable.len();
    for minimum in minimums {
        if !spendable[..before]
            .iter()
            .any(|(asset, _)| *asset == minimum.asset)
        {
            spendable.push((minimum.asset.clone(), Decimal::ZERO));
        }
    }
    if spendable.len() != before {
        spendable.sort_by(|a, b| a.0.cmp(&b.0));
    }
    spendable
}

/// The asset and family of each of `minimums` that no row of `labels` has.
fn missing_rows(labels: &[AssetLabels], minimums: &[MinAvailable]) -> Vec<AssetLabels> {
    minimums
        .iter()
        .filter(|m| {
            !labels
                .iter()
                .any(|l| l.asset == m.asset && l.family == m.family)
        })
        .map(|m| AssetLabels {
            asset: m.asset.clone(),
            family: m.family.clone(),
        })
        .collect()
}

impl BalanceExCollector {
    fn new(
        account: &AccountSettings,
        context: &Context<'_>,
        families: Arc<BalanceFamilies>,
    ) -> Self {
        Self {
            rebase_multiplier: context.settings.rebase_multiplier,
            max_assets: context.settings.max_assets,
            shared: context.shared.clone(),
            families,
            min_available: account.min_available.clone(),
            min_spendable: account.min_spendable.clone(),
            warned_collisions: crate::warn_once::WarnOnce::default(),
            fetched: None,
            applied: None,
            compared: Vec::new(),
        }
    }
}

impl Collector for BalanceExCollector {
    fn endpoint(&self) -> &'static str {
        METHOD
    }

    fn permission(&self) -> &'static str {
        PERMISSION
    }

    fn configure(&self, account: &str, metrics: &mut Changes<'_>) {
        self.families
            .set_minimums(metrics, account, &self.min_available, &self.min_spendable);
    }

    fn fetch<'a>(&'a mut self, client: &'a KrakenClient) -> Fetch<'a> {
        Box::pin(async move {
            let last = self.applied.map(|(fingerprint, _)| fingerprint);
            let answer = client
                .balance_ex_unless(self.rebase_multiplier, last)
                .await?;
            let Some((balances, fingerprint)) = answer else {
                // The answer whose series are exported, again: nothing to decode or render.
                self.fetched = None;
                return Ok(self.applied.map_or(0, |(_, count)| count));
            };
            if balances.assets.len() > self.max_assets {
                return Err(crate::kraken::PollError::new(
                    crate::kraken::ErrorReason::Decode,
                    format!(
                        "the answer has {} rows, more than max_assets ({}) allows; no real account holds that many assets (raise max_assets if yours does)",
                        balances.assets.len(),
                        self.max_assets
                    ),
                ));
            }
            let labelled = label_all_with(
                &self.shared.names,
                balances.assets.iter().map(|a| a.key.as_str()),
            );
            let spendable = spendable_by_asset(&self.shared.names, &balances.assets, &labelled)
                .map_err(|asset| out_of_range(&asset))?;
            let spendable = with_minimum_assets(spendable, &self.min_spendable);
            let missing = missing_rows(&labelled.labels, &self.min_available);
            let count = balances.assets.len();
            self.fetched = Some(Fetched {
                fingerprint,
                balances,
                labelled,
                spendable,
                missing,
            });
            Ok(count)
        })
    }

    fn apply(&mut self, account: &str, metrics: &mut Changes<'_>) {
        let Some(Fetched {
            fingerprint,
            balances,
            labelled,
            spendable,
            missing,
        }) = self.fetched.take()
        else {
            return;
        };
        self.applied = Some((fingerprint, balances.assets.len()));
        for key in &labelled.collisions {
            match self.warned_collisions.check(key.clone()) {
                crate::warn_once::Warn::Now => tracing::warn!(
                    account = %account,
                    raw_key = ?key,
                    "two asset keys map to the same asset and family; both are exported under their raw key"
                ),
                crate::warn_once::Warn::LimitReached => tracing::warn!(
                    account = %account,
                    "more colliding asset keys than are named one by one; the others are not named"
                ),
                crate::warn_once::Warn::Quiet => {}
            }
        }
        let none = AssetBalance {
            key: String::new(),
            balance: Decimal::ZERO,
            hold_trade: Decimal::ZERO,
            credit: Decimal::ZERO,
            credit_used: Decimal::ZERO,
        };
        self.families.replace_balances(
            metrics,
            account,
            labelled
                .labels
                .iter()
                .zip(&balances.assets)
                .chain(missing.iter().map(|labels| (labels, &none))),
        );
        self.families
            .replace_spendable(metrics, account, &spendable);
        self.compared = compare(
            &self.min_spendable,
            &spendable,
            &self.min_available,
            labelled.labels.iter().zip(&balances.assets),
        );
        // Valued inside the update, so values and the price task's revaluations are published in
        // the order they were computed.
        if let Some(valuation) = &self.shared.valuation {
            let mut rows: Vec<HeldRow> = labelled
                .labels
                .into_iter()
                .zip(&balances.assets)
                .filter(|(labels, _)| labels.family.is_valued())
                .map(|(labels, row)| HeldRow::new(labels, row))
                .collect();
            // Kept until the next answer, for every account: without the spare room of growth.
            rows.shrink_to_fit();
            let holdings = Holdings { rows, spendable };
            if let Some((values, prices)) = valuation.set_holdings(account, holdings) {
                let families = &self.shared.valuation_families;
                families.replace_values(metrics, account, &values);
                families.set_prices(metrics, &prices);
            }
        }
    }

    fn comparisons(&self) -> Vec<Comparison> {
        self.compared.clone()
    }

    fn clear(&mut self, account: &str, metrics: &mut Changes<'_>) {
        self.applied = None;
        if let Some(valuation) = &self.shared.valuation {
            valuation.clear_holdings(account);
        }
        metrics.clear_endpoint(account, METHOD, false);
    }
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

    fn minimum(asset: &str) -> MinSpendable {
        MinSpendable {
            asset: asset.to_string(),
            amount: Decimal::ONE,
        }
    }

    #[test]
    fn a_minimum_without_a_row_gets_a_zero_figure_and_rows_kraken_sent_stay() {
        let spendable = vec![
            ("ETH".to_string(), Decimal::TEN),
            ("USD".to_string(), Decimal::ONE),
        ];
        let completed = with_minimum_assets(
            spendable.clone(),
            &[minimum("XBT"), minimum("USD"), minimum("ADA")],
        );
        assert_eq!(
            completed,
            vec![
                ("ADA".to_string(), Decimal::ZERO),
                ("ETH".to_string(), Decimal::TEN),
                ("USD".to_string(), Decimal::ONE),
                ("XBT".to_string(), Decimal::ZERO),
            ]
        );
        assert_eq!(with_minimum_assets(spendable.clone(), &[]), spendable);

        let labels = [classify("XXBT"), classify("DOT.S")];
        let min_available = [
            MinAvailable {
                asset: "XBT".into(),
                family: crate::kraken::AssetFamily::Spot,
                amount: Decimal::ONE,
            },
            MinAvailable {
                asset: "DOT".into(),
                family: crate::kraken::AssetFamily::Spot,
                amount: Decimal::ONE,
            },
        ];
        // DOT has a staked row, not a spot one: its spot minimum gets a zero row.
        assert_eq!(missing_rows(&labels, &min_available), vec![classify("DOT")]);
    }

    #[test]
    fn a_threshold_on_an_asset_kraken_does_not_list_is_named_with_the_nearest_codes() {
        let listed = crate::kraken::assets::listed_labels([
            ("XXBT", "XBT"),
            ("ZUSD", "USD"),
            ("USDT", "USDT"),
            ("XETH", "ETH"),
        ]);
        let mut account = AccountSettings::new("treasury", "KEY-abcdefgh-1234", vec![1; 64]);
        account.min_spendable = vec![minimum("XBT"), minimum("XTB")];
        account.min_available = vec![MinAvailable {
            asset: "USDD".into(),
            family: crate::kraken::AssetFamily::Spot,
            amount: Decimal::ONE,
        }];
        let warnings = unlisted_threshold_assets(&threshold_assets(&[account]), &listed);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].contains("\"treasury\"")
                && warnings[0].contains("min_spendable asset \"XTB\"")
                && warnings[0].contains("did you mean XBT,"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].contains("min_available asset \"USDD\"")
                && warnings[1].contains("did you mean USD, USDT"),
            "{}",
            warnings[1]
        );
    }

    #[test]
    fn balance_families_are_contiguous_and_sorted_by_account() {
        let metrics = Metrics::new(&["b", "a"]);
        let families = BalanceFamilies::register(&metrics);
        let assets = [balance("XXBT", "1"), balance("ZUSD", "2")];
        metrics.update(|m| families.replace_balances(m, "b", assets.iter().map(|(l, b)| (l, b))));
        metrics.update(|m| families.replace_balances(m, "a", assets.iter().map(|(l, b)| (l, b))));
        let text = metrics.render_text();
        let names: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kraken_balance"))
            .map(|l| l.split('{').next().unwrap())
            .collect();
        let mut families_seen = names.clone();
        families_seen.dedup();
        let mut unique = families_seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            families_seen.len(),
            unique.len(),
            "each family's lines are together: {families_seen:?}"
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
    fn replacing_balances_removes_vanished_assets_and_spendable_comes_first() {
        let metrics = Metrics::new(&["a"]);
        let families = BalanceFamilies::register(&metrics);
        let first = [balance("XXBT", "1"), balance("DOT.S", "2")];
        metrics.update(|m| {
            families.replace_balances(m, "a", first.iter().map(|(l, b)| (l, b)));
            families.replace_spendable(m, "a", &[("XBT".to_string(), Decimal::ONE)]);
        });
        let second = [balance("XXBT", "3")];
        metrics.update(|m| families.replace_balances(m, "a", second.iter().map(|(l, b)| (l, b))));
        let text = metrics.render_text();
        assert!(
            text.contains(r#"kraken_balance{account="a",asset="XBT",family="spot"} 3"#),
            "{text}"
        );
        assert!(!text.contains(r#"asset="DOT""#), "{text}");
        let spendable = text.find("# HELP kraken_spendable ").unwrap();
        assert!(spendable < text.find("# HELP kraken_balance ").unwrap());
    }
}
