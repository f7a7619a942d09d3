//! The public endpoints used for valuation: `Assets`, `AssetPairs` and `Ticker`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::faults::{cdn_fault, Fault};
use super::{dec, drift_factor, kraken_error, Shared};

/// Simulated `Assets`: raw key and altname. `KFEE`'s altname is `FEE`, as on Kraken.
const SIM_ASSETS: &[(&str, &str)] = &[
    ("XXBT", "XBT"),
    ("XETH", "ETH"),
    ("ZUSD", "USD"),
    ("ZEUR", "EUR"),
    ("XXDG", "XDG"),
    ("DOT", "DOT"),
    ("ADA", "ADA"),
    ("USDT", "USDT"),
    ("USDC", "USDC"),
    ("SOL", "SOL"),
    ("KSM", "KSM"),
    ("XTZ", "XTZ"),
    ("ETH2", "ETH2"),
    ("AAPLx", "AAPLx"),
    ("KFEE", "FEE"),
    ("XREPV2", "REPV2"),
];

/// Simulated `AssetPairs` and their last prices: pair key, altname, base, quote, last trade.
/// USDC has no pair (valued by its peg); ETH, KSM and XDG only against XBT and ADA only against EUR
/// (valued through one hop); USD in EUR through the inverse of EUR/USD.
const SIM_PAIRS: &[(&str, &str, &str, &str, &str)] = &[
    ("XXBTZUSD", "XBTUSD", "XXBT", "ZUSD", "95000.10000"),
    ("XXBTZEUR", "XBTEUR", "XXBT", "ZEUR", "88000.20000"),
    ("XETHXXBT", "ETHXBT", "XETH", "XXBT", "0.03579"),
    ("ZEURZUSD", "EURUSD", "ZEUR", "ZUSD", "1.0795"),
    ("DOTUSD", "DOTUSD", "DOT", "ZUSD", "7.1234"),
    ("ADAEUR", "ADAEUR", "ADA", "ZEUR", "0.654300"),
    ("USDTZUSD", "USDTUSD", "USDT", "ZUSD", "0.99980000"),
    ("SOLUSD", "SOLUSD", "SOL", "ZUSD", "240.12"),
    ("KSMXBT", "KSMXBT", "KSM", "XXBT", "0.000321"),
    ("XTZUSD", "XTZUSD", "XTZ", "ZUSD", "1.2345"),
    ("XXDGXXBT", "XDGXBT", "XXDG", "XXBT", "0.00000412"),
    ("AAPLxUSD", "AAPLxUSD", "AAPLx", "ZUSD", "231.45"),
];

fn envelope(result: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        serde_json::json!({"error": [], "result": result}).to_string(),
    )
        .into_response()
}

/// Counts a call of the public endpoint `name` and returns its fault's answer, if one is set.
async fn public_fault(inner: &Shared, name: &'static str) -> Option<Response> {
    let fault = {
        let mut state = crate::sync::lock(inner);
        *state.public_calls.entry(name).or_default() += 1;
        state.public_fault.clone()
    };
    if let Some(Fault::KrakenError(text)) = &fault {
        return Some(kraken_error(text));
    }
    cdn_fault(fault.as_ref()).await
}

pub(super) async fn assets(State(inner): State<Shared>) -> Response {
    if let Some(response) = public_fault(&inner, "Assets").await {
        return response;
    }
    let assets: Map<String, Value> = SIM_ASSETS
        .iter()
        .map(|(key, altname)| {
            let info = serde_json::json!({"aclass": "currency", "altname": altname, "decimals": 10, "display_decimals": 5, "status": "enabled"});
            (key.to_string(), info)
        })
        .collect();
    envelope(Value::Object(assets))
}

pub(super) async fn asset_pairs(State(inner): State<Shared>) -> Response {
    if let Some(response) = public_fault(&inner, "AssetPairs").await {
        return response;
    }
    let pairs: Map<String, Value> = SIM_PAIRS
        .iter()
        .map(|(key, altname, base, quote, _)| {
            let info = serde_json::json!({"altname": altname, "wsname": format!("{base}/{quote}"), "aclass_base": "currency", "base": base, "aclass_quote": "currency", "quote": quote, "status": "online"});
            (key.to_string(), info)
        })
        .collect();
    envelope(Value::Object(pairs))
}

pub(super) async fn ticker(State(inner): State<Shared>) -> Response {
    if let Some(response) = public_fault(&inner, "Ticker").await {
        return response;
    }
    let mut state = crate::sync::lock(&inner);
    let drift = state.drift;
    let mut tickers = Map::new();
    for (key, _, _, _, last) in SIM_PAIRS {
        let mut price = dec(last);
        if drift {
            price = (price * drift_factor(&mut state.rng)).round_dp(price.scale());
        }
        let price = price.to_string();
        tickers.insert(
            key.to_string(),
            serde_json::json!({"a": [price, "1", "1.000"], "b": [price, "1", "1.000"], "c": [price, "0.01000000"], "v": ["100.0", "200.0"], "o": price}),
        );
    }
    envelope(Value::Object(tickers))
}
