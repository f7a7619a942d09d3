//! `POST /0/private/WithdrawStatus` and `POST /0/private/DepositStatus`: the recent withdrawals and
//! deposits with their states (about 90 days without paging). 1 point each.
//!
//! Kraken's key page puts `WithdrawStatus` under *Withdraw Funds* and `DepositStatus` under *Deposit
//! Funds*. Each item has `asset`, `amount`, `fee` (may be missing), `time` (unix seconds; seen as a
//! string too), `status` (`Initial`, `Pending`, `Settled`, `Success`, `Failure`) and an optional
//! `status-prop` (`return`, `onhold`, and for withdrawals `cancel-pending`, `canceled`,
//! `cancel-denied`). The answer is a list, or with cursor paging an object holding it; both are read.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::KrakenClient;
use super::envelope::{decode_error, envelope_result, parse_decimal, MAX_NAME_CHARS};
use super::error::PollError;

/// Withdrawals or deposits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Withdrawal,
    Deposit,
}

impl Direction {
    /// The path requested and signed.
    pub const fn path(self) -> &'static str {
        match self {
            Self::Withdrawal => "/0/private/WithdrawStatus",
            Self::Deposit => "/0/private/DepositStatus",
        }
    }

    /// Kraken's method name, the `endpoint` label.
    pub const fn method(self) -> &'static str {
        match self {
            Self::Withdrawal => "WithdrawStatus",
            Self::Deposit => "DepositStatus",
        }
    }

    /// The permission Kraken's key page puts the method under.
    pub const fn permission(self) -> &'static str {
        match self {
            Self::Withdrawal => "Withdraw Funds",
            Self::Deposit => "Deposit Funds",
        }
    }
}

/// One withdrawal or deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movement {
    /// Kraken's asset code (`XXBT`).
    pub asset: String,
    pub amount: Decimal,
    /// Unix seconds when it was requested (a withdrawal) or seen (a deposit).
    pub time: u64,
    /// Kraken's status, as sent (`Pending`).
    pub status: String,
    /// `status-prop`, if any (`onhold`, `canceled`).
    pub status_prop: Option<String>,
}

impl Movement {
    /// Whether it is still on its way: not `Success` or `Failure`, and not cancelled.
    pub fn in_flight(&self) -> bool {
        let status = self.status.to_ascii_lowercase();
        let cancelled = matches!(self.status_prop.as_deref(), Some("canceled" | "cancelled"));
        !(status == "success" || status == "failure" || cancelled)
    }
}

impl KrakenClient {
    /// Calls `WithdrawStatus` or `DepositStatus` once.
    pub async fn funding_status(&self, direction: Direction) -> Result<Vec<Movement>, PollError> {
        self.call(direction.path(), &[], decode_funding_status)
            .await
    }
}

/// The answer with cursor paging: the list inside an object.
#[derive(Deserialize)]
struct RawPaged<'a> {
    #[serde(borrow)]
    items: Vec<RawItem<'a>>,
}

#[derive(Deserialize)]
struct RawItem<'a> {
    asset: String,
    #[serde(borrow)]
    amount: &'a RawValue,
    #[serde(borrow)]
    time: &'a RawValue,
    status: String,
    #[serde(rename = "status-prop", default)]
    status_prop: Option<String>,
}

/// Decodes a `WithdrawStatus` or `DepositStatus` body.
pub fn decode_funding_status(body: &[u8]) -> Result<Vec<Movement>, PollError> {
    let result = envelope_result(body)?;
    let text = result.get();
    let items = if text.trim_start().starts_with('{') {
        serde_json::from_str::<RawPaged>(text).map(|paged| paged.items)
    } else {
        serde_json::from_str::<Vec<RawItem>>(text)
    }
    .map_err(|err| decode_error(format!("funding status: unexpected result ({err})")))?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let at = |field: &str, why: String| {
                decode_error(format!("funding status item {index} {field}: {why}"))
            };
            for (field, name) in [("asset", &item.asset), ("status", &item.status)] {
                if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                    return Err(at(field, "too long or not printable".to_string()));
                }
            }
            let amount = parse_decimal(item.amount.get()).map_err(|why| at("amount", why))?;
            if amount.abs() > super::ledgers::MAX_AMOUNT {
                return Err(at(
                    "amount",
                    format!("{amount} is past any amount Kraken sends"),
                ));
            }
            let time = parse_decimal(item.time.get())
                .map_err(|why| at("time", why))?
                .trunc();
            let time = u64::try_from(time)
                .map_err(|_| at("time", format!("{time} is not a unix time")))?;
            Ok(Movement {
                asset: item.asset,
                amount,
                time,
                status: item.status,
                status_prop: item.status_prop,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_read_from_a_list_or_a_paged_object_and_final_states_leave_flight() {
        let list = br#"{"error":[],"result":[
            {"method":"Bitcoin","aclass":"currency","asset":"XXBT","refid":"R1","txid":"t","info":"a","amount":"0.5000000000","fee":"0.0001","time":1617014556,"status":"Pending"},
            {"method":"Bitcoin","aclass":"currency","asset":"XXBT","refid":"R2","txid":"t","info":"a","amount":"0.1","time":"1617014557","status":"Success"},
            {"method":"Bitcoin","aclass":"currency","asset":"XXBT","refid":"R3","txid":"t","info":"a","amount":"0.2","time":1617014558,"status":"Pending","status-prop":"canceled"}]}"#;
        let items = decode_funding_status(list).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].amount.to_string(), "0.5000000000");
        assert_eq!(items[1].time, 1_617_014_557);
        let flying: Vec<bool> = items.iter().map(Movement::in_flight).collect();
        assert_eq!(flying, [true, false, false]);
        let paged = br#"{"error":[],"result":{"items":[{"asset":"ZEUR","amount":"10","time":5,"status":"Settled"}],"next_cursor":"x"}}"#;
        let items = decode_funding_status(paged).unwrap();
        assert_eq!(items[0].status, "Settled");
        assert!(items[0].in_flight());
        let bad = br#"{"error":[],"result":[{"asset":"ZEUR","amount":"ten","time":5,"status":"Settled"}]}"#;
        assert!(decode_funding_status(bad)
            .unwrap_err()
            .message
            .contains("item 0 amount"));
    }
}
