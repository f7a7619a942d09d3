//! `POST /0/private/TradeBalance`: the margin summary of an account, in one currency. Permission:
//! *Orders and trades - Query open orders & trades* (not only *Query Funds*).
//!
//! The `asset` field names the currency of every figure, as Kraken writes it (`ZUSD`, `XXBT`); the
//! exporter is configured with the modern name (`USD`) and converts it. `ml`, the margin level in
//! percent, is present only while positions are open; `m`, `n`, `c` and `v` are read as 0 when absent.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::KrakenClient;
use super::envelope::{decode_error, envelope_result, parse_decimal};
use super::error::PollError;

/// The path that is both requested (after `api_url`) and signed.
pub const PATH: &str = "/0/private/TradeBalance";

/// Kraken's method name, the `endpoint` label.
pub const METHOD: &str = "TradeBalance";

/// The permission the key needs, for the log line of a refused call.
pub const PERMISSION: &str = "Orders and trades - Query open orders & trades";

/// One `TradeBalance` answer, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeBalance {
    /// `eb`: equivalent balance of all currencies.
    pub equivalent_balance: Decimal,
    /// `tb`: trade balance of the equity currencies.
    pub trade_balance: Decimal,
    /// `m`: margin used by open positions.
    pub margin_used: Decimal,
    /// `n`: unrealized net profit and loss of open positions.
    pub unrealized_pnl: Decimal,
    /// `c`: cost basis of open positions.
    pub cost_basis: Decimal,
    /// `v`: current valuation of open positions.
    pub positions_value: Decimal,
    /// `e`: equity, `tb + n`.
    pub equity: Decimal,
    /// `mf`: free margin, `e - m`.
    pub free_margin: Decimal,
    /// `ml`: margin level in percent, `e / m * 100`; `None` while no position is open.
    pub margin_level_percent: Option<Decimal>,
}

impl KrakenClient {
    /// Calls `TradeBalance` once, with every figure in `asset` (Kraken's code, e.g. `ZUSD`).
    pub async fn trade_balance(&self, asset: &str) -> Result<TradeBalance, PollError> {
        self.call(PATH, &[("asset", asset)], decode_trade_balance)
            .await
    }
}

#[derive(Deserialize)]
struct RawTradeBalance<'a> {
    #[serde(borrow)]
    eb: &'a RawValue,
    #[serde(borrow)]
    tb: &'a RawValue,
    #[serde(borrow, default)]
    m: Option<&'a RawValue>,
    #[serde(borrow, default)]
    n: Option<&'a RawValue>,
    #[serde(borrow, default)]
    c: Option<&'a RawValue>,
    #[serde(borrow, default)]
    v: Option<&'a RawValue>,
    #[serde(borrow)]
    e: &'a RawValue,
    #[serde(borrow)]
    mf: &'a RawValue,
    #[serde(borrow, default)]
    ml: Option<&'a RawValue>,
}

/// Decodes a `TradeBalance` body: the figures, or the Kraken error, or a decode error.
pub fn decode_trade_balance(body: &[u8]) -> Result<TradeBalance, PollError> {
    let result = envelope_result(body)?;
    let raw: RawTradeBalance = serde_json::from_str(result.get())
        .map_err(|err| decode_error(format!("TradeBalance: unexpected result ({err})")))?;
    let field = |name: &str, value: &RawValue| {
        parse_decimal(value.get())
            .map_err(|why| decode_error(format!("TradeBalance field {name:?}: {why}")))
    };
    let optional = |name: &str, value: Option<&RawValue>| {
        value.map_or(Ok(Decimal::ZERO), |value| field(name, value))
    };
    Ok(TradeBalance {
        equivalent_balance: field("eb", raw.eb)?,
        trade_balance: field("tb", raw.tb)?,
        margin_used: optional("m", raw.m)?,
        unrealized_pnl: optional("n", raw.n)?,
        cost_basis: optional("c", raw.c)?,
        positions_value: optional("v", raw.v)?,
        equity: field("e", raw.e)?,
        free_margin: field("mf", raw.mf)?,
        margin_level_percent: raw.ml.map(|ml| field("ml", ml)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::ErrorReason;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    #[test]
    fn decodes_krakens_example_exactly() {
        let answer = decode_trade_balance(
            br#"{"error": [], "result": {"eb": "1101.3425", "tb": "392.2264", "m": "7.0354", "n": "-10.0232",
              "c": "21.1063", "v": "31.1297", "e": "382.2032", "mf": "375.1678", "ml": "5432.57", "uv": "0"}}"#,
        )
        .unwrap();
        assert_eq!(answer.equivalent_balance, dec("1101.3425"));
        assert_eq!(answer.unrealized_pnl, dec("-10.0232"));
        assert_eq!(answer.free_margin, dec("375.1678"));
        assert_eq!(answer.margin_level_percent, Some(dec("5432.57")));
    }

    #[test]
    fn without_positions_the_margin_level_is_absent() {
        let answer = decode_trade_balance(
            br#"{"error":[],"result":{"eb":"100.0","tb":"100.0","e":"100.0","mf":"100.0"}}"#,
        )
        .unwrap();
        assert_eq!(answer.margin_level_percent, None);
        assert_eq!(answer.margin_used, Decimal::ZERO);
    }

    #[test]
    fn errors_and_foreign_answers_are_told_apart() {
        let err = decode_trade_balance(br#"{"error":["EGeneral:Permission denied"]}"#).unwrap_err();
        assert_eq!(err.reason, ErrorReason::PermissionDenied);
        let err =
            decode_trade_balance(br#"{"error":[],"result":{"eb":"x","tb":"1","e":"1","mf":"1"}}"#)
                .unwrap_err();
        assert_eq!(err.reason, ErrorReason::Decode);
        assert!(err.message.contains("eb"), "{err}");
    }
}
