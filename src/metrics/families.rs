//! The hand-rendered families, one chunk per account and family: spendable amounts `{account, asset}`,
//! balances `{account, asset, family}`, and their values `{account, asset, family, quote}` and
//! `{account, asset, quote}`.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::exposition::{render_labels, Encoded, GaugeFamily};
use crate::kraken::{AssetBalance, AssetLabels};
use crate::valuation::{AccountValues, ValueRow};

/// A balance family: its name and help, and which amount of a balance it exports.
pub(super) struct BalanceFamily {
    pub(super) family: GaugeFamily,
    amount: fn(&AssetBalance) -> Decimal,
}

/// The families with the labels `{account, asset, family}`, one series per asset of each account.
pub(super) const BALANCE_FAMILIES: &[BalanceFamily] = &[
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance", help: "Total balance of the asset as reported by Kraken BalanceEx (including held amounts), in units of the asset." },
        amount: |b| b.balance,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_available", help: "Amount of the asset available to trade or withdraw: balance + credit - credit_used - hold_trade, in units of the asset." },
        amount: AssetBalance::available,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_credit", help: "Credit line granted in the asset (0 when Kraken reports none), in units of the asset." },
        amount: |b| b.credit,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_credit_used", help: "Part of the credit line in use (0 when Kraken reports none), in units of the asset." },
        amount: |b| b.credit_used,
    },
    BalanceFamily {
        family: GaugeFamily { name: "kraken_balance_hold", help: "Amount of the asset on hold for open orders (hold_trade), in units of the asset." },
        amount: |b| b.hold_trade,
    },
];

/// The family with the labels `{account, asset}`: what can be spent of each asset.
pub(super) const SPENDABLE_FAMILY: GaugeFamily = GaugeFamily {
    name: "kraken_spendable",
    help: "What can be spent of the asset: balance + credit - credit_used - hold_trade summed over its spot and auto-earn rows, in units of the asset. Alert on this, not on the per-row available amount.",
};

/// The families valued in a quote currency: balances `{account, asset, family, quote}`, then
/// spendable amounts `{account, asset, quote}`.
pub(super) const VALUE_FAMILIES: &[GaugeFamily] = &[
    GaugeFamily { name: "kraken_balance_value", help: "kraken_balance valued in the quote currency at Kraken's last trade price (see the README for how prices are found)." },
    GaugeFamily { name: "kraken_balance_available_value", help: "kraken_balance_available valued in the quote currency at Kraken's last trade price." },
    GaugeFamily { name: "kraken_spendable_value", help: "kraken_spendable valued in the quote currency at Kraken's last trade price." },
];

/// The nearest `f64` to an exact decimal.
///
/// A decimal is `mantissa / 10^scale`. When both are exact in `f64` (mantissa up to 2^53, scale up to
/// 22: every Kraken amount), one IEEE division gives the correctly rounded result; otherwise the decimal
/// text goes through Rust's correctly rounded parser. Either way the result is the nearest `f64`.
pub fn to_f64(value: Decimal) -> f64 {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let mantissa = value.mantissa();
    let scale = value.scale() as usize;
    if mantissa.unsigned_abs() <= 1u128 << 53 && scale < POW10.len() {
        return mantissa as f64 / POW10[scale];
    }
    f64::from_str(&value.to_string()).unwrap_or(f64::NAN)
}

/// Renders one account's lines of each of [`BALANCE_FAMILIES`], in that order.
pub(super) fn render_balances<'a, I>(account: &str, balances: I) -> Vec<Encoded>
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
    BALANCE_FAMILIES
        .iter()
        .map(|f| {
            f.family.render(
                rows.iter()
                    .map(|(labels, balance)| (labels.as_str(), to_f64((f.amount)(balance)))),
            )
        })
        .collect()
}

/// Renders one account's `kraken_spendable` lines.
pub(super) fn render_spendable(account: &str, spendable: &[(String, Decimal)]) -> Vec<Encoded> {
    let rows: Vec<(String, f64)> = spendable
        .iter()
        .map(|(asset, amount)| {
            (
                render_labels(&[("account", account), ("asset", asset)]),
                to_f64(*amount),
            )
        })
        .collect();
    vec![SPENDABLE_FAMILY.render(rows.iter().map(|(labels, value)| (labels.as_str(), *value)))]
}

/// Renders one account's lines of each of [`VALUE_FAMILIES`], in that order.
pub(super) fn render_values(account: &str, values: &AccountValues) -> Vec<Encoded> {
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
