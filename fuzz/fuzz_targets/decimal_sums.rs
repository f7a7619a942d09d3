//! Fuzzes the money arithmetic with amounts anywhere in `Decimal`'s range: a row's available amount,
//! spendable sums over rows and their values. Out of range must be an error, never a panic.
#![no_main]

use kraken_exporter::kraken::assets::{label_all_with, AssetNames};
use kraken_exporter::kraken::AssetBalance;
use kraken_exporter::valuation::{value_holdings, HeldRow, Holdings, Market};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

const KEYS: &[&str] = &["XXBT", "XBT.F", "XBT", "ZUSD", "USD.F", "USD.HOLD", "KFEE", "DOT.S"];

/// A decimal from 13 bytes: 96-bit mantissa, sign and scale.
fn decimal(bytes: &[u8]) -> Decimal {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    Decimal::from_parts(word(0), word(4), word(8), bytes[12] & 0x80 != 0, u32::from(bytes[12] % 29))
}

fuzz_target!(|data: &[u8]| {
    let mut rows = Vec::new();
    for chunk in data.chunks_exact(1 + 4 * 13) {
        rows.push(AssetBalance {
            key: KEYS[usize::from(chunk[0]) % KEYS.len()].to_string(),
            balance: decimal(&chunk[1..14]),
            hold_trade: decimal(&chunk[14..27]),
            credit: decimal(&chunk[27..40]),
            credit_used: decimal(&chunk[40..53]),
        });
    }
    let names = AssetNames::default();
    let labelled = label_all_with(&names, rows.iter().map(|a| a.key.as_str()));
    for row in &rows {
        let _ = row.available();
        let _ = row.checked_available();
    }
    let Ok(spendable) = kraken_exporter::spendable::spendable_by_asset(&names, &rows, &labelled)
    else {
        return;
    };
    let price = data.get(..13).map_or(Decimal::ONE, decimal);
    let market = Market::from_prices([("XBT", "USD", price), ("USD", "EUR", price)]);
    let holdings = Holdings {
        rows: labelled
            .labels
            .into_iter()
            .zip(&rows)
            .map(|(labels, row)| HeldRow::new(labels, row))
            .collect(),
        spendable,
    };
    let _ = value_holdings(&market, &["USD".to_string(), "EUR".to_string()], &holdings);
});
