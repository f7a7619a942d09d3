//! `POST /0/private/Earn/Allocations`: what is allocated to Earn strategies, by state, and when funds
//! on their way out become spendable. Permission: *Funds permissions - Query* (as `BalanceEx`).
//!
//! Sent with `hide_zero_allocations=true`. Each item is one strategy; `amount_allocated` holds one
//! object per state (`total`, `bonding`, `allocated`, `exit_queue`, `unbonding`; a state appears only
//! when non-empty), each with its `native` amount and, for the moving states, the `allocations` with
//! their `expires` time. Amounts are read exactly; times as RFC 3339.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::KrakenClient;
use super::envelope::{decode_error, envelope_result, parse_decimal};
use super::error::PollError;

/// The path that is both requested (after `api_url`) and signed.
pub const PATH: &str = "/0/private/Earn/Allocations";

/// Kraken's method name, the `endpoint` label.
pub const METHOD: &str = "Earn/Allocations";

/// The permission the key needs, for the log line of a refused call.
pub const PERMISSION: &str = "Funds permissions - Query";

/// The states whose allocations are on their way out (their `expires` is when they become spendable).
pub const RELEASING_STATES: &[&str] = &["unbonding", "exit_queue"];

/// One strategy's allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub strategy_id: String,
    /// Kraken's asset code (`ETH`, `XXBT`); labelled through the same table as `BalanceEx`.
    pub native_asset: String,
    /// State -> native amount, for every state Kraken reported.
    pub states: BTreeMap<String, Decimal>,
    /// Unix seconds of the earliest `expires` among the unbonding and exit-queue allocations.
    pub next_release: Option<u64>,
    /// `total_rewarded.native`.
    pub rewarded: Decimal,
}

impl KrakenClient {
    /// Calls `Earn/Allocations` once.
    pub async fn earn_allocations(&self) -> Result<Vec<Allocation>, PollError> {
        self.call(
            PATH,
            &[("hide_zero_allocations", "true")],
            decode_earn_allocations,
        )
        .await
    }
}

#[derive(Deserialize)]
struct RawResult<'a> {
    #[serde(borrow, default)]
    items: Vec<RawItem<'a>>,
}

#[derive(Deserialize)]
struct RawItem<'a> {
    strategy_id: String,
    native_asset: String,
    #[serde(borrow, default)]
    amount_allocated: BTreeMap<String, RawState<'a>>,
    #[serde(borrow, default)]
    total_rewarded: Option<RawAmount<'a>>,
}

#[derive(Deserialize)]
struct RawState<'a> {
    #[serde(borrow)]
    native: &'a RawValue,
    #[serde(default)]
    allocations: Vec<RawTranche>,
}

#[derive(Deserialize)]
struct RawTranche {
    #[serde(default)]
    expires: Option<String>,
}

#[derive(Deserialize)]
struct RawAmount<'a> {
    #[serde(borrow)]
    native: &'a RawValue,
}

/// Decodes an `Earn/Allocations` body: one [`Allocation`] per strategy, or the Kraken error, or a
/// decode error.
pub fn decode_earn_allocations(body: &[u8]) -> Result<Vec<Allocation>, PollError> {
    let result = envelope_result(body)?;
    let raw: RawResult = serde_json::from_str(result.get())
        .map_err(|err| decode_error(format!("Earn/Allocations: unexpected result ({err})")))?;
    raw.items
        .into_iter()
        .map(|item| {
            let at =
                |what: &str| format!("Earn/Allocations strategy {:?} {what}", item.strategy_id);
            let mut states = BTreeMap::new();
            let mut next_release: Option<u64> = None;
            for (state, amount) in &item.amount_allocated {
                let native = parse_decimal(amount.native.get())
                    .map_err(|why| decode_error(format!("{}: {why}", at(state))))?;
                states.insert(state.clone(), native);
                if !RELEASING_STATES.contains(&state.as_str()) {
                    continue;
                }
                for tranche in &amount.allocations {
                    let Some(expires) = &tranche.expires else {
                        continue;
                    };
                    let seconds = humantime::parse_rfc3339(expires.trim())
                        .ok()
                        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                        .map(|since| since.as_secs())
                        .ok_or_else(|| {
                            decode_error(format!(
                                "{}: expires {expires:?} is not an RFC 3339 time",
                                at(state)
                            ))
                        })?;
                    next_release = Some(next_release.map_or(seconds, |n| n.min(seconds)));
                }
            }
            let rewarded = match &item.total_rewarded {
                None => Decimal::ZERO,
                Some(amount) => parse_decimal(amount.native.get())
                    .map_err(|why| decode_error(format!("{}: {why}", at("total_rewarded"))))?,
            };
            Ok(Allocation {
                strategy_id: item.strategy_id,
                native_asset: item.native_asset,
                states,
                next_release,
                rewarded,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decodes_every_state_and_the_earliest_release() {
        let allocations = decode_earn_allocations(
            br#"{"error": [], "result": {"converted_asset": "USD", "total_allocated": "49.2398", "total_rewarded": "0.0675",
              "items": [{"strategy_id": "ESDQCOL-WTZEU-NU55QF", "native_asset": "ETH",
                "amount_allocated": {
                  "bonding": {"native": "0.0210000000", "converted": "39.0645", "allocation_count": 2,
                    "allocations": [{"created_at": "2023-07-06T10:52:05Z", "expires": "2023-08-19T02:34:05.807Z",
                                     "native": "0.0010000000", "converted": "1.8602"}]},
                  "unbonding": {"native": "0.5", "allocations": [
                      {"expires": "2023-09-02T00:00:00Z", "native": "0.3"},
                      {"expires": "2023-09-01T12:00:00Z", "native": "0.2"}]},
                  "exit_queue": {"native": "0.1", "allocations": [{"expires": "2023-09-05T00:00:00Z", "native": "0.1"}]},
                  "total": {"native": "0.6210000000", "converted": "39.0645"}},
                "total_rewarded": {"native": "0.0001", "converted": "0.0675"}}]}}"#,
        )
        .unwrap();
        assert_eq!(allocations.len(), 1);
        let eth = &allocations[0];
        assert_eq!(eth.native_asset, "ETH");
        let dec = |t: &str| Decimal::from_str(t).unwrap();
        assert_eq!(eth.states["bonding"], dec("0.0210000000"));
        assert_eq!(eth.states["unbonding"], dec("0.5"));
        assert_eq!(eth.states["exit_queue"], dec("0.1"));
        assert_eq!(eth.states["total"], dec("0.6210000000"));
        // 2023-09-01T12:00:00Z, the earliest unbonding or exit-queue expiry (bonding does not count).
        assert_eq!(eth.next_release, Some(1_693_569_600));
        assert_eq!(eth.rewarded, dec("0.0001"));
    }

    #[test]
    fn an_allocation_with_nothing_on_its_way_out_has_no_release() {
        let allocations = decode_earn_allocations(
            br#"{"error":[],"result":{"items":[{"strategy_id":"S","native_asset":"DOT",
                "amount_allocated":{"total":{"native":"5"}},"total_rewarded":{"native":"0"}}]}}"#,
        )
        .unwrap();
        assert_eq!(allocations[0].next_release, None);
    }

    #[test]
    fn bad_times_and_amounts_are_decode_errors_naming_the_strategy() {
        for body in [
            r#"{"error":[],"result":{"items":[{"strategy_id":"S1","native_asset":"DOT","amount_allocated":{"unbonding":{"native":"1","allocations":[{"expires":"soon"}]}}}]}}"#,
            r#"{"error":[],"result":{"items":[{"strategy_id":"S1","native_asset":"DOT","amount_allocated":{"total":{"native":"lots"}}}]}}"#,
        ] {
            let err = decode_earn_allocations(body.as_bytes()).unwrap_err();
            assert_eq!(err.reason, crate::kraken::ErrorReason::Decode);
            assert!(err.message.contains("S1"), "{err}");
        }
    }
}
