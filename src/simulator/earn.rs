//! `Earn/Allocations` as the simulator answers it: strategies with tranches in each state, and the
//! handler.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::private::{json_ok, signed, Fields};
use super::{dec, Shared, SimInner};
use crate::kraken::earn_allocations;

/// One simulated Earn allocation (a strategy) for `Earn/Allocations`.
#[derive(Debug, Clone)]
pub struct SimAllocation {
    pub strategy_id: String,
    /// As Kraken writes it (`ETH`, `DOT`).
    pub native_asset: String,
    /// State (`bonding`, `allocated`, `exit_queue`, `unbonding`) -> tranches as (expires, amount);
    /// `total` is their sum.
    pub states: BTreeMap<String, Vec<(std::time::SystemTime, Decimal)>>,
    pub rewarded: Decimal,
}

impl SimAllocation {
    pub fn new(strategy_id: &str, native_asset: &str, rewarded: &str) -> Self {
        Self {
            strategy_id: strategy_id.to_string(),
            native_asset: native_asset.to_string(),
            states: BTreeMap::new(),
            rewarded: dec(rewarded),
        }
    }

    /// Adds a tranche of `amount` in `state`, expiring at `expires`.
    pub fn tranche(mut self, state: &str, amount: &str, expires: std::time::SystemTime) -> Self {
        self.states
            .entry(state.to_string())
            .or_default()
            .push((expires, dec(amount)));
        self
    }

    fn total(&self) -> Decimal {
        self.states
            .values()
            .flatten()
            .map(|(_, amount)| *amount)
            .sum()
    }

    fn is_zero(&self) -> bool {
        self.total().is_zero()
    }

    fn render(&self) -> Value {
        let mut amount_allocated = Map::new();
        for (state, tranches) in &self.states {
            let native: Decimal = tranches.iter().map(|(_, amount)| *amount).sum();
            let allocations: Vec<Value> = tranches
                .iter()
                .map(|(expires, amount)| {
                    serde_json::json!({"created_at": "2026-01-01T00:00:00Z",
                        "expires": humantime::format_rfc3339_millis(*expires).to_string(),
                        "native": format!("{amount:.10}"), "converted": "0.0000"})
                })
                .collect();
            amount_allocated.insert(
                state.clone(),
                serde_json::json!({"native": format!("{native:.10}"), "converted": "0.0000",
                    "allocation_count": allocations.len(), "allocations": allocations}),
            );
        }
        amount_allocated.insert(
            "total".to_string(),
            serde_json::json!({"native": format!("{:.10}", self.total()), "converted": "0.0000"}),
        );
        serde_json::json!({"strategy_id": self.strategy_id, "native_asset": self.native_asset,
            "amount_allocated": amount_allocated,
            "total_rewarded": {"native": format!("{:.10}", self.rewarded), "converted": "0.0000"}})
    }
}

pub(super) async fn handler(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(earn_allocations::PATH, inner, headers, body, answer).await
}

fn answer(state: &mut SimInner, api_key: &str, fields: &Fields) -> Response {
    let account = &state.accounts[api_key];
    let hide_zero = fields.get("hide_zero_allocations").map(String::as_str) == Some("true");
    let items: Vec<Value> = account
        .earn
        .iter()
        .filter(|allocation| !hide_zero || !allocation.is_zero())
        .map(super::SimAllocation::render)
        .collect();
    json_ok(
        // `next_cursor` as real answers carry it; every item fits one page here.
        serde_json::json!({"error": [], "result": {"converted_asset": "USD", "total_allocated": "0.0000",
            "total_rewarded": "0.0000", "next_cursor": null, "items": items}})
        .to_string(),
    )
}
