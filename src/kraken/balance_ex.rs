//! `POST /0/private/BalanceEx`: every asset's balance, hold and credit. Permission: *Funds
//! permissions - Query*.
//!
//! The request carries `rebase_multiplier` when configured; the answer is decoded exactly (see
//! `envelope`). `credit` and `credit_used` are optional (absent means 0); unknown fields are
//! ignored.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::{Fingerprint, KrakenClient, RebaseMultiplier};
use super::envelope::{decode_error, envelope_result_if_any, parse_decimal, MAX_NAME_CHARS};
use super::error::PollError;

/// The path that is both requested (after `api_url`) and signed.
pub const PATH: &str = "/0/private/BalanceEx";

/// Kraken's method name, the `endpoint` label.
pub const METHOD: &str = "BalanceEx";

/// The permission the key needs, for the log line of a refused call.
pub const PERMISSION: &str = "Funds permissions - Query";

impl KrakenClient {
    /// Calls `BalanceEx` once.
    pub async fn balance_ex(
        &self,
        rebase_multiplier: Option<RebaseMultiplier>,
    ) -> Result<Balances, PollError> {
        let fields: &[(&str, &str)] = match rebase_multiplier {
            None => &[],
            Some(rebase) => &[("rebase_multiplier", rebase.as_str())],
        };
        self.call(PATH, fields, decode_balance_ex).await
    }

    /// Calls `BalanceEx` once; `Ok(None)` when the answer is byte for byte the one `applied` is the
    /// fingerprint of (not decoded again), else the answer with its fingerprint. An answer is only
    /// ever compared once Kraken's HTTP status said success (see `checked`).
    pub async fn balance_ex_unless(
        &self,
        rebase_multiplier: Option<RebaseMultiplier>,
        applied: Option<Fingerprint>,
    ) -> Result<Option<(Balances, Fingerprint)>, PollError> {
        let fields: &[(&str, &str)] = match rebase_multiplier {
            None => &[],
            Some(rebase) => &[("rebase_multiplier", rebase.as_str())],
        };
        self.call(PATH, fields, |body| {
            let fingerprint = Fingerprint::of(body);
            if applied == Some(fingerprint) {
                return Ok(None);
            }
            decode_balance_ex(body).map(|balances| Some((balances, fingerprint)))
        })
        .await
    }
}

/// One asset's balance as Kraken reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetBalance {
    /// The raw asset key (`XXBT`, `DOT.S`).
    pub key: String,
    pub balance: Decimal,
    pub hold_trade: Decimal,
    pub credit: Decimal,
    pub credit_used: Decimal,
}

impl AssetBalance {
    /// `balance + credit - credit_used - hold_trade`, exactly; `None` past `Decimal`'s range.
    pub fn checked_available(&self) -> Option<Decimal> {
        self.balance
            .checked_add(self.credit)?
            .checked_sub(self.credit_used)?
            .checked_sub(self.hold_trade)
    }

    /// `balance + credit - credit_used - hold_trade`, exactly. The decoder refuses a row whose
    /// amount is out of range, so for rows from Kraken this is [`Self::checked_available`]; a row
    /// built by hand past the range saturates instead of panicking.
    pub fn available(&self) -> Decimal {
        self.checked_available()
            .unwrap_or(if self.balance.is_sign_negative() {
                Decimal::MIN
            } else {
                Decimal::MAX
            })
    }
}

/// Every asset of one successful `BalanceEx` answer, sorted by raw key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    pub assets: Vec<AssetBalance>,
}

#[derive(Deserialize)]
struct RawAssetBalance<'a> {
    #[serde(borrow)]
    balance: &'a RawValue,
    #[serde(borrow)]
    hold_trade: &'a RawValue,
    #[serde(borrow, default)]
    credit: Option<&'a RawValue>,
    #[serde(borrow, default)]
    credit_used: Option<&'a RawValue>,
}

/// The `result` object as (key, balance) pairs in document order: cheaper than a map, which would
/// allocate a tree node per asset only to be walked once.
struct AssetMap<'a>(Vec<(String, RawAssetBalance<'a>)>);

impl<'de> Deserialize<'de> for AssetMap<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = AssetMap<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of asset balances")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry::<String, RawAssetBalance<'de>>()? {
                    entries.push(entry);
                }
                Ok(AssetMap(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// Decodes a `BalanceEx` HTTP body: the balances, or the Kraken error, or a decode error.
///
/// An account that was never funded answers `{"error":[]}` with no `result` (Kraken acknowledged it
/// as a bug of theirs), a fresh one `{"error":[],"result":{}}`: both are an account with no balances,
/// not an outage.
pub fn decode_balance_ex(body: &[u8]) -> Result<Balances, PollError> {
    let Some(result) = envelope_result_if_any(body)? else {
        return Ok(Balances::default());
    };
    let AssetMap(mut raw) = serde_json::from_str(result.get())
        .map_err(|err| decode_error(format!("\"result\" is not a map of asset balances: {err}")))?;
    // Sorted by key; of a key given twice, the last one counts (as a JSON object reader would).
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    raw.dedup_by(|later, earlier| {
        let duplicate = later.0 == earlier.0;
        if duplicate {
            std::mem::swap(later, earlier);
        }
        duplicate
    });
    if let Some((key, _)) = raw
        .iter()
        .find(|(key, _)| key.chars().count() > MAX_NAME_CHARS)
    {
        return Err(decode_error(format!(
            "an asset key of {} characters ({:?}...) is longer than the {MAX_NAME_CHARS} any Kraken asset code needs; refused",
            key.chars().count(),
            key.chars().take(16).collect::<String>()
        )));
    }
    let assets = raw
        .into_iter()
        .map(|(key, raw)| {
            let field = |name: &str, value: Option<&RawValue>| -> Result<Decimal, PollError> {
                value.map_or(Ok(Decimal::ZERO), |v| {
                    parse_decimal(v.get())
                        .map_err(|why| decode_error(format!("asset {key:?} field {name:?}: {why}")))
                })
            };
            let row = AssetBalance {
                balance: field("balance", Some(raw.balance))?,
                hold_trade: field("hold_trade", Some(raw.hold_trade))?,
                credit: field("credit", raw.credit)?,
                credit_used: field("credit_used", raw.credit_used)?,
                key,
            };
            match row.checked_available() {
                Some(_) => Ok(row),
                None => Err(out_of_range(&row.key)),
            }
        })
        .collect::<Result<Vec<_>, PollError>>()?;
    Ok(Balances { assets })
}

/// The decode error of amounts whose sums leave `Decimal`'s range (about 7.9e28): no real balance
/// is that large, so the answer is not to be trusted.
pub fn out_of_range(what: &str) -> PollError {
    decode_error(format!(
        "amounts out of range: {what}'s balance + credit - credit_used - hold_trade (or its sum over rows) exceeds the exact decimal range; the answer is not a real balance"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::ErrorReason;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn decode(body: &str) -> Result<Balances, PollError> {
        decode_balance_ex(body.as_bytes())
    }

    #[test]
    fn decodes_the_documented_example_with_strings() {
        let balances = decode(
            r#"{"error": [], "result": {
              "ZUSD":  {"balance": "25435.2100", "hold_trade": "8249.7600"},
              "USDT":  {"balance": "1000.00000000", "hold_trade": "0.00000000",
                        "credit": "500.00000000", "credit_used": "120.50000000"},
              "DOT.S": {"balance": "101.1234567890", "hold_trade": "0.0000000000"}}}"#,
        )
        .unwrap();
        let usd = balances.assets.iter().find(|a| a.key == "ZUSD").unwrap();
        assert_eq!(usd.available(), dec("17185.45"));
        assert_eq!(usd.credit, Decimal::ZERO);
        let usdt = balances.assets.iter().find(|a| a.key == "USDT").unwrap();
        assert_eq!(usdt.available(), dec("1379.5"));
        let dot = balances.assets.iter().find(|a| a.key == "DOT.S").unwrap();
        assert_eq!(dot.balance.to_string(), "101.1234567890");
    }

    #[test]
    fn json_numbers_are_read_exactly_not_through_f64() {
        let balances = decode(
            r#"{"error":[],"result":{"XXBT":{"balance":0.1,"hold_trade":0.2,"credit":1e-10}}}"#,
        )
        .unwrap();
        let xbt = &balances.assets[0];
        assert_eq!(xbt.balance, dec("0.1"));
        assert_eq!(xbt.hold_trade, dec("0.2"));
        assert_eq!(xbt.credit, dec("0.0000000001"));
        // In f64, 0.1 + 0.0000000001 - 0.2 is not exactly -0.0999999999.
        assert_eq!(xbt.available(), dec("-0.0999999999"));
    }

    #[test]
    fn huge_and_tiny_values_keep_every_digit() {
        let balances = decode(
            r#"{"error":[],"result":{"SHIB":{"balance":"123456789012345678.1234567890","hold_trade":"0.0000000001"}}}"#,
        )
        .unwrap();
        let shib = &balances.assets[0];
        assert_eq!(shib.balance.to_string(), "123456789012345678.1234567890");
        assert_eq!(
            shib.available().to_string(),
            "123456789012345678.1234567889"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let balances = decode(
            r#"{"error":[],"extra":1,"result":{"ETH2.S":{"balance":"1","hold_trade":"0","future_field":{"x":[1]}}}}"#,
        )
        .unwrap();
        assert_eq!(balances.assets[0].balance, Decimal::ONE);
    }

    #[test]
    fn an_asset_key_longer_than_any_kraken_code_is_refused_naming_the_limit() {
        let long = "A".repeat(900);
        let body = format!(
            r#"{{"error":[],"result":{{"{long}":{{"balance":"1","hold_trade":"0"}},"XXBT":{{"balance":"1","hold_trade":"0"}}}}}}"#
        );
        let err = decode_balance_ex(body.as_bytes()).unwrap_err();
        assert_eq!(err.reason, crate::kraken::ErrorReason::Decode);
        assert!(
            err.message.contains("an asset key of 900 characters")
                && err.message.contains("longer than the 64")
                && err.message.len() < 200,
            "{}",
            err.message
        );
        let ok = format!(
            r#"{{"error":[],"result":{{"{}":{{"balance":"1","hold_trade":"0"}}}}}}"#,
            "B".repeat(64)
        );
        assert_eq!(decode_balance_ex(ok.as_bytes()).unwrap().assets.len(), 1);
    }

    #[test]
    fn a_key_given_twice_counts_once_with_its_last_value() {
        let balances = decode(
            r#"{"error":[],"result":{"ZUSD":{"balance":"1","hold_trade":"0"},"DOT":{"balance":"3","hold_trade":"0"},"ZUSD":{"balance":"2","hold_trade":"0"}}}"#,
        )
        .unwrap();
        let keys: Vec<&str> = balances.assets.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["DOT", "ZUSD"]);
        assert_eq!(balances.assets[1].balance, Decimal::from(2));
    }

    #[test]
    fn empty_result_is_an_empty_portfolio() {
        assert_eq!(
            decode(r#"{"error":[],"result":{}}"#).unwrap().assets,
            vec![]
        );
    }

    #[test]
    fn a_never_funded_account_without_result_is_an_empty_portfolio() {
        for body in [r#"{"error":[]}"#, "{\"error\": []}\n"] {
            assert_eq!(decode(body).unwrap().assets, vec![], "{body}");
        }
    }

    #[test]
    fn kraken_errors_become_poll_errors_with_their_reason() {
        let err = decode(r#"{"error":["EAPI:Invalid nonce"]}"#).unwrap_err();
        assert_eq!(err.reason, ErrorReason::InvalidNonce);
        assert!(err.message.contains("EAPI:Invalid nonce"));
    }

    #[test]
    fn bodies_that_are_not_the_envelope_are_decode_errors() {
        for body in [
            "<html><body>520: Web server is returning an unknown error</body></html>",
            r#"{"error":[],"result":{"XXBT":{"balance":"1.0""#,
            r#"{"status":"ok"}"#,
            r#"{"result":{}}"#,
            r#"{"error":[],"result":null}"#,
            r#"{"error":[],"result":[1,2]}"#,
            r#"{"error":[],"result":{"XXBT":{"balance":"abc","hold_trade":"0"}}}"#,
            r#"{"error":[],"result":{"XXBT":{"balance":null,"hold_trade":"0"}}}"#,
            r#"{"error":[],"result":{"XXBT":{"balance":"1"}}}"#,
            "",
        ] {
            let err = decode(body).unwrap_err();
            assert_eq!(err.reason, ErrorReason::Decode, "{body}");
        }
    }

    #[test]
    fn amounts_whose_sum_leaves_the_decimal_range_are_a_decode_error_not_a_panic() {
        let max = Decimal::MAX.to_string();
        for body in [
            format!(
                r#"{{"error":[],"result":{{"XXBT":{{"balance":"{max}","hold_trade":"0","credit":"1"}}}}}}"#
            ),
            format!(
                r#"{{"error":[],"result":{{"XXBT":{{"balance":"-{max}","hold_trade":"1"}}}}}}"#
            ),
        ] {
            let err = decode(&body).unwrap_err();
            assert_eq!(err.reason, ErrorReason::Decode, "{body}");
            assert!(
                err.message.contains("amounts out of range") && err.message.contains("XXBT"),
                "{err}"
            );
        }
    }

    #[test]
    fn decode_errors_name_the_asset_and_field() {
        let err = decode(r#"{"error":[],"result":{"XXBT":{"balance":"1","hold_trade":"x"}}}"#)
            .unwrap_err();
        assert!(
            err.message.contains("XXBT") && err.message.contains("hold_trade"),
            "{err}"
        );
    }
}
