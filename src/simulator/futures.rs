//! The Kraken Futures `accounts` endpoint, checked as Kraken Futures checks it: a known `APIKey`, an
//! `Authent` recomputed over the path without `/derivatives`, and a `Nonce` strictly greater than the
//! last one of the key (`nonceBelowThreshold` / `nonceDuplicate` otherwise). Cash balances are
//! written as strings and flex figures as numbers, as the current documentation writes them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use rust_decimal::Decimal;

use super::faults::{cdn_fault, Fault};
use super::private::json_ok;
use super::{dec, header_text, MovingLevel, Shared, SimRequest};
use crate::kraken::futures::accounts::PATH;
use crate::kraken::futures::sign::authent;

/// One simulated futures key and its wallets.
pub(super) struct SimFuturesKey {
    pub(super) secret: Vec<u8>,
    pub(super) last_nonce: u64,
    pub(super) wallets: SimFutures,
    pub(super) calls: u64,
    /// An answer of `accounts` served byte for byte once a request passed the checks.
    pub(super) recorded: Option<Bytes>,
    /// The key's public key, which the key check names (as Kraken's does).
    pub(super) public_key: String,
    /// What the key check answers; `None`: HTTP 404, as a host without the endpoint.
    pub(super) key_info: Option<super::SimKeyInfo>,
}

/// The wallets of a futures account.
#[derive(Debug, Clone, Default)]
pub struct SimFutures {
    /// Cash wallet: currency as Kraken writes it there (lower case) -> balance.
    pub cash: Vec<(String, Decimal)>,
    pub flex: Option<SimFlex>,
}

/// A flex wallet: currencies and totals in USD. With `moving`, the margin ratio (equity /
/// maintenance margin, in percent in [`MovingLevel`]) falls step by step per call and jumps back,
/// P&L following so the figures agree.
#[derive(Debug, Clone)]
pub struct SimFlex {
    /// (currency upper case, quantity, value, collateral, available).
    pub currencies: Vec<(String, Decimal, Decimal, Decimal, Decimal)>,
    pub balance_value: Decimal,
    pub collateral_value: Decimal,
    pub initial_margin: Decimal,
    pub maintenance_margin: Decimal,
    pub pnl: Decimal,
    pub moving: Option<MovingLevel>,
}

impl SimFlex {
    /// A flex wallet without open positions holding `currencies` (quantity, USD price, haircut in
    /// percent).
    pub fn holding(currencies: &[(&str, &str, &str, &str)]) -> Self {
        let mut flex = Self {
            currencies: Vec::new(),
            balance_value: Decimal::ZERO,
            collateral_value: Decimal::ZERO,
            initial_margin: Decimal::ZERO,
            maintenance_margin: Decimal::ZERO,
            pnl: Decimal::ZERO,
            moving: None,
        };
        for (currency, quantity, price, haircut) in currencies {
            let quantity = dec(quantity);
            let value = quantity * dec(price);
            let collateral =
                (value * (Decimal::ONE_HUNDRED - dec(haircut)) / Decimal::ONE_HUNDRED).round_dp(8);
            flex.currencies
                .push((currency.to_string(), quantity, value, collateral, quantity));
            flex.balance_value += value;
            flex.collateral_value += collateral;
        }
        flex
    }

    /// With an open position of these margins (USD).
    pub fn with_position(
        mut self,
        initial_margin: &str,
        maintenance_margin: &str,
        pnl: &str,
    ) -> Self {
        self.initial_margin = dec(initial_margin);
        self.maintenance_margin = dec(maintenance_margin);
        self.pnl = dec(pnl);
        self
    }

    /// The margin ratio (equity / maintenance margin) the `call`-th answer reports.
    pub fn ratio_at(&self, call: u64) -> Option<Decimal> {
        if self.maintenance_margin.is_zero() {
            return None;
        }
        let ratio = match self.moving {
            Some(moving) => moving.level_at(call) / Decimal::ONE_HUNDRED,
            None => (self.collateral_value + self.pnl) / self.maintenance_margin,
        };
        Some(ratio)
    }

    fn render(&self, call: u64) -> String {
        let mut pnl = self.pnl;
        if let (Some(moving), false) = (self.moving, self.maintenance_margin.is_zero()) {
            let ratio = moving.level_at(call) / Decimal::ONE_HUNDRED;
            pnl = ratio * self.maintenance_margin - self.collateral_value;
        }
        let equity = self.collateral_value + pnl;
        let currencies: Vec<String> = self
            .currencies
            .iter()
            .map(|(currency, quantity, value, collateral, available)| {
                format!(r#""{currency}":{{"quantity":{quantity},"value":{value},"collateral":{collateral},"available":{available}}}"#)
            })
            .collect();
        format!(
            r#"{{"type":"multiCollateralMarginAccount","currencies":{{{}}},"balanceValue":{},"portfolioValue":{},"collateralValue":{},"initialMargin":{},"initialMarginWithOrders":{},"maintenanceMargin":{},"pnl":{},"unrealizedFunding":0,"totalUnrealized":{},"totalUnrealizedAsMargin":{},"marginEquity":{},"availableMargin":{}}}"#,
            currencies.join(","),
            self.balance_value,
            self.balance_value + pnl,
            self.collateral_value,
            self.initial_margin,
            self.initial_margin,
            self.maintenance_margin,
            pnl,
            pnl,
            pnl,
            equity,
            (equity - self.initial_margin).max(Decimal::ZERO),
        )
    }
}

impl SimFutures {
    fn render(&self, call: u64) -> String {
        let cash: Vec<String> = self
            .cash
            .iter()
            .map(|(currency, amount)| format!(r#""{currency}":"{amount}""#))
            .collect();
        let mut wallets = vec![format!(
            r#""cash":{{"type":"cashAccount","balances":{{{}}}}}"#,
            cash.join(",")
        )];
        if let Some(flex) = &self.flex {
            wallets.push(format!(r#""flex":{}"#, flex.render(call)));
        }
        format!(
            r#"{{"result":"success","serverTime":"{}","accounts":{{{}}}}}"#,
            humantime::format_rfc3339_millis(std::time::SystemTime::now()),
            wallets.join(",")
        )
    }
}

/// Kraken Futures' error answer (HTTP 200).
fn futures_error(code: &str) -> Response {
    json_ok(format!(
        r#"{{"result":"error","error":"{code}","serverTime":"{}"}}"#,
        humantime::format_rfc3339_millis(std::time::SystemTime::now())
    ))
}

pub(super) async fn accounts(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    signed(PATH, inner, headers, |key| {
        let call = key.calls;
        key.calls += 1;
        match &key.recorded {
            Some(recorded) => json_ok(recorded.clone()),
            None => json_ok(key.wallets.render(call)),
        }
    })
    .await
}

pub(super) async fn key_check(State(inner): State<Shared>, headers: HeaderMap) -> Response {
    signed(
        crate::kraken::futures::key_check::PATH,
        inner,
        headers,
        |key| match &key.key_info {
            Some(info) => json_ok(info.render_futures(&key.public_key)),
            None => super::private::json_ok_status(axum::http::StatusCode::NOT_FOUND, "{}"),
        },
    )
    .await
}

/// Records the request, applies faults and Kraken Futures' checks (key, `Authent` over `path`,
/// nonce), then `answer`s for the key.
async fn signed(
    path: &'static str,
    inner: Shared,
    headers: HeaderMap,
    answer: impl FnOnce(&mut SimFuturesKey) -> Response,
) -> Response {
    let header = |name: &str| header_text(&headers, name);
    let api_key = header("apikey");
    let sent = header("authent");
    let nonce_text = header("nonce");
    let nonce = nonce_text.parse::<u64>().ok();
    let (fault, index) = {
        let mut state = crate::sync::lock(&inner);
        let signature_valid = state
            .futures
            .get(&api_key)
            .is_some_and(|key| authent(&key.secret, path, &nonce_text, "") == sent);
        let index = state.record(SimRequest {
            path,
            fields: Default::default(),
            api_key: api_key.clone(),
            api_sign: sent.clone(),
            nonce,
            signature_valid,
            error: None,
            received_at: std::time::Instant::now(),
        });
        (state.futures_fault.clone(), index)
    };
    if let Some(response) = cdn_fault(fault.as_ref()).await {
        return response;
    }
    let mut state = crate::sync::lock(&inner);
    let signature_valid = state.requests[index].signature_valid;
    let checked = (|| {
        if headers.get("user-agent").is_none() {
            return Err("authenticationError");
        }
        let key = state
            .futures
            .get_mut(&api_key)
            .ok_or("authenticationError")?;
        if !signature_valid {
            return Err("authenticationError");
        }
        match nonce {
            None => return Err("authenticationError"),
            Some(n) if n == key.last_nonce => return Err("nonceDuplicate"),
            Some(n) if n < key.last_nonce => return Err("nonceBelowThreshold"),
            Some(n) => key.last_nonce = n,
        }
        Ok(())
    })();
    let refused = match (checked, &fault) {
        (Err(code), _) => Some(code.to_string()),
        (Ok(()), Some(Fault::KrakenError(code))) => Some(code.clone()),
        (Ok(()), _) => None,
    };
    if let Some(code) = refused {
        state.requests[index].error = Some(code.clone());
        return futures_error(&code);
    }
    answer(state.futures.get_mut(&api_key).expect("checked above"))
}
