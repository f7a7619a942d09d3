//! What can be spent of each asset: its spot and auto-earn rows together.
//!
//! With Kraken Rewards auto-earn on (the default for new accounts), one asset is split across its base
//! row and its `.F` row, and the holds of open orders are charged to the base row, which can then
//! show `hold_trade` larger than its `balance` (`XXBT {balance 0, hold_trade 0.5}` next to
//! `XBT.F {balance 1.2}`). Kraken trades the two rows as one ("use `USDT` to transact with your `USDT`
//! and `USDT.F` balances"), so what can be spent is the sum over both of
//! `balance + credit - credit_used - hold_trade`: 0.7 XBT here. Staked, bonded, opt-in, yield-bearing,
//! tokenized and parachain rows are not spendable and are left out; an asset with none of its spot or
//! auto-earn rows gets no figure.
//!
//! Where two raw keys map to one asset and family (`XXBT` and `XBT` in one answer; the per-row series
//! keep their raw keys then), only one of them counts: the one with the smaller amount. The figure
//! then errs low, which for a low-funds page means a page early, never one missed, and nothing is
//! counted twice.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::kraken::assets::{AssetNames, LabelledKeys};
use crate::kraken::{AssetBalance, AssetFamily};

/// Spendable amount per asset label, sorted by asset; computed exactly in decimal. `labelled` are the
/// series labels of `rows` (same order, from [`crate::kraken::assets::label_all_with`] with `names`): a
/// row's own labels are used as they are, and only a colliding key, whose series carries its raw key,
/// is named again with `names` to find its asset. `Err(asset)` names an asset whose sum leaves
/// `Decimal`'s range (no real balance does).
pub fn spendable_by_asset(
    names: &AssetNames,
    rows: &[AssetBalance],
    labelled: &LabelledKeys,
) -> Result<Vec<(String, Decimal)>, String> {
    debug_assert_eq!(rows.len(), labelled.labels.len(), "one label pair per row");
    // (asset, family) -> the smallest available amount among the rows that map there.
    let mut per_family: BTreeMap<(String, bool), Decimal> = BTreeMap::new();
    for (row, labels) in rows.iter().zip(&labelled.labels) {
        let auto_earn = match labels.family {
            AssetFamily::Spot => false,
            AssetFamily::AutoEarn => true,
            _ => continue,
        };
        let asset = if labelled.collisions.contains(&row.key) {
            names.classify(&row.key).asset
        } else {
            labels.asset.clone()
        };
        let available = row.checked_available().ok_or_else(|| asset.clone())?;
        per_family
            .entry((asset, auto_earn))
            .and_modify(|kept| *kept = (*kept).min(available))
            .or_insert(available);
    }
    let mut per_asset: BTreeMap<String, Decimal> = BTreeMap::new();
    for ((asset, _), amount) in per_family {
        let sum = per_asset.entry(asset.clone()).or_default();
        *sum = sum.checked_add(amount).ok_or(asset)?;
    }
    Ok(per_asset.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::assets::label_all_with;
    use std::str::FromStr;

    fn row(key: &str, balance: &str, hold_trade: &str) -> AssetBalance {
        AssetBalance {
            key: key.to_string(),
            balance: Decimal::from_str(balance).unwrap(),
            hold_trade: Decimal::from_str(hold_trade).unwrap(),
            credit: Decimal::ZERO,
            credit_used: Decimal::ZERO,
        }
    }

    fn spendable(rows: &[AssetBalance]) -> Vec<(String, String)> {
        let names = AssetNames::default();
        let labelled = label_all_with(&names, rows.iter().map(|row| row.key.as_str()));
        spendable_by_asset(&names, rows, &labelled)
            .unwrap()
            .into_iter()
            .map(|(asset, amount)| (asset, amount.to_string()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn an_auto_earn_row_pays_for_the_holds_charged_to_its_base_row() {
        let rows = [
            row("XXBT", "0.0000000000", "0.5000000000"),
            row("XBT.F", "1.2000000000", "0.0000000000"),
            row("ZUSD", "100.0000", "250.0000"),
            row("USD.F", "1000.0000", "0.0000"),
        ];
        assert_eq!(
            spendable(&rows),
            pairs(&[("USD", "850.0000"), ("XBT", "0.7000000000")])
        );
    }

    #[test]
    fn credit_counts_and_non_spendable_families_do_not() {
        let mut usdt = row("USDT", "1000.00000000", "0.00000000");
        usdt.credit = Decimal::from_str("500.00000000").unwrap();
        usdt.credit_used = Decimal::from_str("120.50000000").unwrap();
        let rows = [
            usdt,
            row("USDT.F", "2500.00000000", "0.00000000"),
            row("DOT.S", "101.1234567890", "0"),
            row("ETH2.S", "32", "0"),
            row("XBT.M", "0.05", "0"),
            row("USDC.B", "800", "0"),
            row("AAPLx.T", "10", "0"),
            row("KSM.P", "12.5", "0"),
        ];
        assert_eq!(spendable(&rows), pairs(&[("USDT", "3879.50000000")]));
    }

    #[test]
    fn colliding_keys_count_once_at_the_smaller_amount() {
        let rows = [
            row("XBT", "2.0", "0"),
            row("XXBT", "1.5", "0.5"),
            row("XBT.F", "0.25", "0"),
        ];
        // XBT spot: min(2.0, 1.0) = 1.0; plus auto-earn 0.25.
        assert_eq!(spendable(&rows), pairs(&[("XBT", "1.25")]));
    }

    #[test]
    fn fee_credits_and_fiat_on_hold_are_never_spendable() {
        let rows = [
            row("KFEE", "7328.19", "0.00"),
            row("USD.HOLD", "50.0000", "0.0000"),
            row("ZUSD", "21.9050", "17.2000"),
        ];
        assert_eq!(spendable(&rows), pairs(&[("USD", "4.7050")]));
    }

    #[test]
    fn a_sum_past_the_decimal_range_names_its_asset_instead_of_panicking() {
        let rows = [
            row("XXBT", "50000000000000000000000000000", "0"),
            row("XBT.F", "50000000000000000000000000000", "0"),
        ];
        let names = AssetNames::default();
        let labelled = label_all_with(&names, rows.iter().map(|row| row.key.as_str()));
        assert_eq!(
            spendable_by_asset(&names, &rows, &labelled),
            Err("XBT".to_string())
        );
    }
}
