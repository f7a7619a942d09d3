//! `TradeBalance` as the simulator answers it: a margin account in one currency whose level can move
//! step by step for the demo, and the handler.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use rust_decimal::Decimal;
use serde_json::Value;

use super::private::{json_ok, signed, Fields};
use super::{dec, kraken_error, Shared, SimInner};
use crate::kraken::trade_balance;

/// A simulated margin account for `TradeBalance`, in one currency.
#[derive(Debug, Clone)]
pub struct SimMargin {
    /// The currency as Kraken writes it (`ZUSD`); a request for another is refused.
    pub asset: String,
    pub equivalent_balance: Decimal,
    pub trade_balance: Decimal,
    pub margin_used: Decimal,
    pub unrealized_pnl: Decimal,
    pub cost_basis: Decimal,
    /// For the demo: the margin level in percent moves down by `step` per call from `high` to `low`,
    /// then starts again at `high`, beginning at `start`; P&L follows so the figures agree.
    pub moving: Option<MovingLevel>,
}

/// A margin level that falls step by step and jumps back up (see [`SimMargin::moving`]).
#[derive(Debug, Clone, Copy)]
pub struct MovingLevel {
    pub high: Decimal,
    pub low: Decimal,
    pub step: Decimal,
    pub start: Decimal,
}

impl MovingLevel {
    /// The level (in percent) at the `call`-th answer: `start`, then `step` lower each call down to
    /// `low`, then `high` again.
    pub fn level_at(&self, call: u64) -> Decimal {
        let span = self.high - self.low;
        let steps = (span / self.step).floor() + Decimal::ONE;
        let offset = ((self.high - self.start) / self.step).floor();
        let k = (Decimal::from(call) + offset) % steps;
        self.high - k * self.step
    }
}

impl SimMargin {
    /// A margin account; `equity = trade_balance + unrealized_pnl`, `free = equity - margin_used`,
    /// `level = equity / margin_used * 100` (absent without margin used: no open position).
    pub fn new(asset: &str, eb: &str, tb: &str, m: &str, n: &str, c: &str) -> Self {
        Self {
            asset: asset.to_string(),
            equivalent_balance: dec(eb),
            trade_balance: dec(tb),
            margin_used: dec(m),
            unrealized_pnl: dec(n),
            cost_basis: dec(c),
            moving: None,
        }
    }

    /// The margin level in percent the `call`-th answer reports (`None` without margin used).
    pub fn level_at(&self, call: u64) -> Option<Decimal> {
        let m = self.margin_used;
        if m.is_zero() {
            return None;
        }
        let e = self.trade_balance + self.pnl_at(call);
        Some((e / m * Decimal::ONE_HUNDRED).round_dp(2))
    }

    fn pnl_at(&self, call: u64) -> Decimal {
        match (self.moving, self.margin_used.is_zero()) {
            (Some(moving), false) => {
                moving.level_at(call) / Decimal::ONE_HUNDRED * self.margin_used - self.trade_balance
            }
            _ => self.unrealized_pnl,
        }
    }

    fn render(&self, call: u64) -> String {
        let m = self.margin_used;
        let n = self.pnl_at(call);
        let e = self.trade_balance + n;
        let v = self.cost_basis + n;
        let four = |d: Decimal| format!("{:.4}", d.round_dp(4));
        let mut result = serde_json::json!({
            "eb": four(self.equivalent_balance), "tb": four(self.trade_balance), "m": four(m),
            "n": four(n), "c": four(self.cost_basis), "v": four(v), "e": four(e), "mf": four(e - m),
            "uv": "0.0000",
            // Not in Kraken's documentation, seen in a recorded answer: the exporter ignores it.
            "mfo": four(e - m),
        });
        if !m.is_zero() {
            result["ml"] =
                Value::String(format!("{:.2}", (e / m * Decimal::ONE_HUNDRED).round_dp(2)));
        }
        serde_json::json!({"error": [], "result": result}).to_string()
    }
}

pub(super) async fn handler(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(trade_balance::PATH, inner, headers, body, answer).await
}

fn answer(state: &mut SimInner, api_key: &str, fields: &Fields) -> Response {
    let account = state
        .accounts
        .get_mut(api_key)
        .expect("authenticated keys exist");
    let calls = account.trade_balance_calls;
    account.trade_balance_calls += 1;
    let Some(margin) = &account.margin else {
        // No margin activity: Kraken still answers, without positions.
        return json_ok(
            serde_json::json!({"error": [], "result": {"eb": "0.0000", "tb": "0.0000", "m": "0.0000",
                "n": "0.0000", "c": "0.0000", "v": "0.0000", "e": "0.0000", "mf": "0.0000"}})
            .to_string(),
        );
    };
    let asset = fields
        .get("asset")
        .cloned()
        .unwrap_or_else(|| "ZUSD".to_string());
    if asset != margin.asset {
        return kraken_error("EGeneral:Invalid arguments:asset");
    }
    json_ok(margin.render(calls))
}
