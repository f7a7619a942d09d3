//! `Ledgers`, `WithdrawStatus` and `DepositStatus` as Kraken answers them, and Kraken's rate
//! counter.
//!
//! The ledger answers newest first in pages of 50, with Kraken's filters: `start` (exclusive) and
//! `end` (inclusive) as unix seconds or ledger ids, `ofs`, `type` and `asset` (comma lists),
//! `count` unless `without_count`; the `ledger` object is rendered in id order, which is not time
//! order (Kraken promises none). A growing ledger appends the demo's trades, fees and rewards as time
//! passes, each time it is asked.
//!
//! The rate counter is Kraken's per-key counter: every call adds its cost (2 for `Ledgers`, 1 for
//! the rest), the counter decays by the tier's rate a second, and a call that would take it past the
//! tier's maximum is refused with `EAPI:Rate limit exceeded`. Off unless a test turns it on.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::private::{json_ok, signed, Fields};
use super::{dec, Shared, SimInner};
use crate::kraken::funding::Direction;
use crate::kraken::ledgers::{PAGE, PATH};

/// One ledger entry: what the exporter's decoder reads of one, so the tests compare like with like.
pub use crate::kraken::ledgers::Entry as SimEntry;

/// An account's ledger, in the order entries were added.
#[derive(Debug, Clone, Default)]
pub struct SimLedger {
    entries: Vec<SimEntry>,
    /// The demo's: appends entries as time passes (`Some(time of the last entry added)`).
    growing: Option<u64>,
}

impl SimLedger {
    /// Appends an entry with a Kraken-shaped id; its id.
    pub fn push(
        &mut self,
        time: Decimal,
        kind: &str,
        asset: &str,
        amount: &str,
        fee: &str,
    ) -> String {
        let id = ledger_id(self.entries.len() as u64);
        self.entries.push(SimEntry {
            id: id.clone(),
            time,
            kind: kind.to_string(),
            asset: asset.to_string(),
            amount: dec(amount),
            fee: dec(fee),
        });
        id
    }

    /// Every entry, in the order they were added.
    pub fn entries(&self) -> &[SimEntry] {
        &self.entries
    }

    /// Lets the ledger grow as time passes (the demo).
    pub fn growing(mut self) -> Self {
        self.growing = Some(unix_now());
        self
    }

    /// The demo's activity since the last growth: a trade every 20 seconds (XBT bought with USD, the
    /// fee on the USD side), a staking reward on DOT every minute.
    fn grow(&mut self) {
        let Some(since) = self.growing else {
            return;
        };
        let now = unix_now();
        for second in since + 1..=now {
            let time = Decimal::from(second);
            if second % 20 == 0 {
                let cents = 100 + (second / 20) % 50;
                self.push(time, "trade", "XXBT", &format!("0.00{cents}"), "0");
                self.push(
                    time,
                    "trade",
                    "ZUSD",
                    &format!("-{}.50", cents * 9),
                    "0.2400",
                );
            }
            if second % 60 == 0 {
                self.push(time, "staking", "DOT.S", "0.0123456789", "0");
            }
        }
        self.growing = Some(now);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A Kraken-shaped ledger id (`LXXXXX-XXXXX-XXXXXX`), different for every `n` and not in time order.
fn ledger_id(n: u64) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
    let mut text = String::from("L");
    for position in 0..16 {
        if position == 5 || position == 10 {
            text.push('-');
        }
        text.push(char::from(LETTERS[(x % 32) as usize]));
        x /= 32;
        if x == 0 {
            x = n + 7;
        }
    }
    text
}

/// A withdrawal or deposit as `WithdrawStatus` and `DepositStatus` list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMovement {
    pub asset: String,
    pub amount: Decimal,
    pub fee: Option<Decimal>,
    pub time: u64,
    pub status: String,
    pub status_prop: Option<String>,
}

impl SimMovement {
    pub fn new(asset: &str, amount: &str, time: u64, status: &str) -> Self {
        Self {
            asset: asset.to_string(),
            amount: dec(amount),
            fee: None,
            time,
            status: status.to_string(),
            status_prop: None,
        }
    }

    pub fn with_prop(mut self, prop: &str) -> Self {
        self.status_prop = Some(prop.to_string());
        self
    }

    fn render(&self, index: usize) -> Value {
        let mut item = json!({
            "method": "Bitcoin",
            "aclass": "currency",
            "asset": self.asset,
            "refid": format!("FTQcuak-V6Za8qrWnhzTx67yYHz8Tg{index}"),
            "txid": format!("{index:064x}"),
            "info": "bc1qsimulatedaddress",
            "amount": self.amount.to_string(),
            "time": self.time,
            "status": self.status,
        });
        if let Some(fee) = self.fee {
            item["fee"] = Value::String(fee.to_string());
        }
        if let Some(prop) = &self.status_prop {
            item["status-prop"] = Value::String(prop.clone());
        }
        item
    }
}

/// Kraken's rate counter of one key.
#[derive(Debug, Clone)]
pub struct RateCounter {
    maximum: f64,
    decay_per_second: f64,
    points: f64,
    at: Instant,
}

impl RateCounter {
    /// The counter of a verification tier (`starter`, `intermediate`, `pro`).
    pub fn of_tier(tier: &str) -> Option<Self> {
        let (maximum, decay_per_second) = match tier {
            "starter" => (15.0, 0.33),
            "intermediate" => (20.0, 0.5),
            "pro" => (20.0, 1.0),
            _ => return None,
        };
        Some(Self {
            maximum,
            decay_per_second,
            points: 0.0,
            at: Instant::now(),
        })
    }

    /// Charges a call of `path`; `false` when it would go past the maximum (then nothing is charged).
    pub(super) fn charge(&mut self, path: &str) -> bool {
        let now = Instant::now();
        let decayed = now.duration_since(self.at).as_secs_f64() * self.decay_per_second;
        self.points = (self.points - decayed).max(0.0);
        self.at = now;
        let cost = if path == PATH { 2.0 } else { 1.0 };
        if self.points + cost > self.maximum {
            return false;
        }
        self.points += cost;
        true
    }
}

pub(super) async fn ledgers(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(PATH, inner, headers, body, answer_ledgers).await
}

pub(super) async fn withdraw_status(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(
        Direction::Withdrawal.path(),
        inner,
        headers,
        body,
        |state, key, _| json_ok(render_movements(&state.accounts[key].withdrawals)),
    )
    .await
}

pub(super) async fn deposit_status(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(
        Direction::Deposit.path(),
        inner,
        headers,
        body,
        |state, key, _| json_ok(render_movements(&state.accounts[key].deposits)),
    )
    .await
}

fn render_movements(movements: &[SimMovement]) -> String {
    let items: Vec<Value> = movements
        .iter()
        .enumerate()
        .map(|(index, movement)| movement.render(index))
        .collect();
    json!({"error": [], "result": items}).to_string()
}

/// A bound given as unix seconds or as a ledger id (the entry's time).
fn bound(ledger: &SimLedger, text: Option<&String>) -> Option<Decimal> {
    let text = text?.trim();
    if let Ok(seconds) = text.parse::<Decimal>() {
        return Some(seconds);
    }
    ledger
        .entries
        .iter()
        .find(|entry| entry.id == text)
        .map(|entry| entry.time)
}

fn answer_ledgers(state: &mut SimInner, api_key: &str, fields: &Fields) -> Response {
    let ledger = &mut state.accounts.get_mut(api_key).expect("checked").ledger;
    ledger.grow();
    let start = bound(ledger, fields.get("start"));
    let end = bound(ledger, fields.get("end"));
    let list = |name: &str| -> Option<Vec<String>> {
        fields
            .get(name)
            .map(|text| text.split(',').map(|s| s.trim().to_string()).collect())
    };
    let kinds = list("type").filter(|kinds| !kinds.iter().any(|k| k == "all"));
    let assets = list("asset").filter(|assets| !assets.iter().any(|a| a == "all"));
    let offset: usize = fields
        .get("ofs")
        .and_then(|ofs| ofs.parse().ok())
        .unwrap_or(0);
    let mut matching: Vec<(usize, &SimEntry)> = ledger
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| start.is_none_or(|start| e.time > start))
        .filter(|(_, e)| end.is_none_or(|end| e.time <= end))
        .filter(|(_, e)| kinds.as_ref().is_none_or(|k| k.contains(&e.kind)))
        .filter(|(_, e)| assets.as_ref().is_none_or(|a| a.contains(&e.asset)))
        .collect();
    // Newest first; entries of one time in the order they were added, newest first.
    matching.sort_by(|(ia, a), (ib, b)| b.time.cmp(&a.time).then(ib.cmp(ia)));
    let count = matching.len();
    // Rendered by hand so `time` is the exact decimal Kraken sends, as a JSON number.
    let page: BTreeMap<&str, String> = matching
        .into_iter()
        .skip(offset)
        .take(PAGE)
        .map(|(_, e)| {
            let text = |value: &str| Value::String(value.to_string()).to_string();
            (
                e.id.as_str(),
                format!(
                    r#"{{"refid":{},"time":{},"type":{},"subtype":"","aclass":"currency","asset":{},"amount":{},"fee":{},"balance":"0.0000000000"}}"#,
                    text(&format!("T{}", &e.id[1..])),
                    e.time,
                    text(&e.kind),
                    text(&e.asset),
                    text(&e.amount.to_string()),
                    text(&e.fee.to_string()),
                ),
            )
        })
        .collect();
    let entries: Vec<String> = page
        .iter()
        .map(|(id, entry)| format!("{}:{entry}", Value::String((*id).to_string())))
        .collect();
    let count = if fields.get("without_count").map(String::as_str) == Some("true") {
        String::new()
    } else {
        format!(r#","count":{count}"#)
    };
    json_ok(format!(
        r#"{{"error":[],"result":{{"ledger":{{{}}}{count}}}}}"#,
        entries.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_kraken_shaped() {
        let ids: std::collections::BTreeSet<String> = (0..10_000).map(ledger_id).collect();
        assert_eq!(ids.len(), 10_000);
        let id = ledger_id(3);
        assert_eq!(id.len(), 19, "{id}");
        assert_eq!((&id[6..7], &id[12..13]), ("-", "-"));
    }

    #[test]
    fn the_counter_refuses_past_the_tiers_maximum_and_ledgers_cost_two() {
        let mut counter = RateCounter::of_tier("starter").unwrap();
        for _ in 0..7 {
            assert!(counter.charge(PATH));
        }
        assert!(counter.charge("/0/private/BalanceEx"));
        assert!(!counter.charge("/0/private/BalanceEx"));
    }
}
