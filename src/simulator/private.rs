//! The signed endpoints, checked the way Kraken checks them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::faults::{cdn_fault, Fault};
use super::{drift, kraken_error, Portfolio, Shared, SimInner, SimRequest};
use crate::kraken::sign::api_sign;
use crate::kraken::BALANCE_EX_PATH;

pub(super) async fn balance_ex(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let api_key = header("api-key");
    let sent_sign = header("api-sign");
    let is_json = header("content-type").starts_with("application/json");
    let (nonce, rebase_multiplier) = parse_body(&body, is_json);

    // Every request is recorded, whatever happens to it next.
    let (fault, index) = {
        let mut state = inner.lock().unwrap_or_else(|p| p.into_inner());
        let signature_valid = match (state.accounts.get(&api_key), nonce) {
            (Some(account), Some(nonce)) => {
                api_sign(&account.secret, BALANCE_EX_PATH, nonce, &body) == sent_sign
            }
            _ => false,
        };
        state.requests.push(SimRequest {
            api_key: api_key.clone(),
            api_sign: sent_sign.clone(),
            nonce,
            signature_valid,
            rebase_multiplier: rebase_multiplier.clone(),
            error: None,
            received_at: std::time::Instant::now(),
        });
        (state.fault.clone(), state.requests.len() - 1)
    };
    // Faults in front of the API (the CDN) answer before Kraken sees the request: no nonce is used.
    if let Some(response) = cdn_fault(fault.as_ref()).await {
        return response;
    }

    let mut state = inner.lock().unwrap_or_else(|p| p.into_inner());
    let result =
        authenticate(&mut state, &headers, &api_key, &sent_sign, nonce, &body).and_then(|()| {
            match &state.fault {
                Some(Fault::KrakenError(text)) => Err(text.clone()),
                _ => Ok(()),
            }
        });
    if let Err(text) = result {
        state.requests[index].error = Some(text.clone());
        return kraken_error(&text);
    }
    if state.drift {
        drift(&mut state, &api_key);
    }
    let portfolio = &state.accounts[&api_key].portfolio;
    let body = render_portfolio(portfolio, rebase_multiplier.as_deref() == Some("base"));
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// Kraken's checks, in its order: User-Agent, key, nonce present, signature, nonce increasing.
fn authenticate(
    state: &mut SimInner,
    headers: &HeaderMap,
    api_key: &str,
    sent_sign: &str,
    nonce: Option<u64>,
    body: &[u8],
) -> Result<(), String> {
    if headers.get("user-agent").is_none() {
        return Err("EGeneral:Invalid arguments:User-Agent".to_string());
    }
    let Some(account) = state.accounts.get_mut(api_key) else {
        return Err("EAPI:Invalid key".to_string());
    };
    let Some(nonce) = nonce else {
        return Err("EAPI:Invalid nonce".to_string());
    };
    if api_sign(&account.secret, BALANCE_EX_PATH, nonce, body) != sent_sign {
        return Err("EAPI:Invalid signature".to_string());
    }
    if nonce <= account.last_nonce {
        return Err("EAPI:Invalid nonce".to_string());
    }
    account.last_nonce = nonce;
    Ok(())
}

/// The nonce and `rebase_multiplier` of a form or JSON body.
fn parse_body(body: &[u8], is_json: bool) -> (Option<u64>, Option<String>) {
    if is_json {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let nonce = match &value["nonce"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let rebase = value["rebase_multiplier"].as_str().map(str::to_string);
        return (nonce, rebase);
    }
    let text = String::from_utf8_lossy(body);
    let field = |name: &str| {
        text.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    (
        field("nonce").and_then(|n| n.parse().ok()),
        field("rebase_multiplier"),
    )
}

fn render_portfolio(portfolio: &Portfolio, base: bool) -> String {
    let amount = |value: Decimal, decimals: u32| {
        Value::String(format!(
            "{:.*}",
            decimals as usize,
            value.round_dp(decimals)
        ))
    };
    let mut result = Map::new();
    for (key, asset) in portfolio {
        let balance = match asset.rebase_multiplier {
            Some(multiplier) if !base => asset.balance * multiplier,
            _ => asset.balance,
        };
        let mut fields = Map::new();
        fields.insert("balance".into(), amount(balance, asset.decimals));
        fields.insert(
            "hold_trade".into(),
            amount(asset.hold_trade, asset.decimals),
        );
        if let Some(credit) = asset.credit {
            fields.insert("credit".into(), amount(credit, asset.decimals));
        }
        if let Some(credit_used) = asset.credit_used {
            fields.insert("credit_used".into(), amount(credit_used, asset.decimals));
        }
        result.insert(key.clone(), Value::Object(fields));
    }
    serde_json::json!({"error": [], "result": result}).to_string()
}
