//! The signed endpoints, checked the way Kraken checks them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use std::collections::BTreeMap;

use super::faults::{cdn_fault, echo_fault, Fault};
use super::{drift, header_text, kraken_error, Portfolio, Shared, SimInner, SimRequest};
use crate::kraken::sign::api_sign;
use crate::kraken::BALANCE_EX_PATH;

/// The fields of a form or JSON body.
pub(super) type Fields = BTreeMap<String, String>;

/// What a signed endpoint answers once the request passed Kraken's checks.
type Answer = fn(&mut SimInner, &str, &Fields) -> Response;

pub(super) async fn balance_ex(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(BALANCE_EX_PATH, inner, headers, body, answer_balance_ex).await
}

/// Records the request, applies faults and Kraken's checks, then `answer`s.
pub(super) async fn signed(
    path: &'static str,
    inner: Shared,
    headers: HeaderMap,
    body: Bytes,
    answer: Answer,
) -> Response {
    let header = |name: &str| header_text(&headers, name);
    let api_key = header("api-key");
    let sent_sign = header("api-sign");
    let is_json = header("content-type").starts_with("application/json");
    let fields = parse_body(&body, is_json);
    let nonce = fields.get("nonce").and_then(|n| n.parse::<u64>().ok());

    // Every request is recorded, whatever happens to it next.
    let (fault, index) = {
        let mut state = crate::sync::lock(&inner);
        let signature_valid = match (state.accounts.get(&api_key), nonce) {
            (Some(account), Some(nonce)) => {
                api_sign(&account.secret, path, nonce, &body) == sent_sign
            }
            _ => false,
        };
        let index = state.record(SimRequest {
            path,
            api_key: api_key.clone(),
            api_sign: sent_sign.clone(),
            nonce,
            signature_valid,
            fields: fields
                .iter()
                .filter(|(name, _)| name.as_str() != "otp")
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            error: None,
            received_at: std::time::Instant::now(),
        });
        (state.fault.clone(), index)
    };
    // Faults in front of the API (the CDN) answer before Kraken sees the request: no nonce is used.
    if let Some(response) = echo_fault(fault.as_ref(), &body, &api_key, &sent_sign) {
        return response;
    }
    if let Some(response) = cdn_fault(fault.as_ref()).await {
        return response;
    }

    let mut state = crate::sync::lock(&inner);
    let signature_valid = state.requests[index].signature_valid;
    let result = authenticate(
        &mut state,
        path,
        &headers,
        &api_key,
        &fields,
        signature_valid,
    )
    .and_then(|()| match &state.fault {
        Some(Fault::KrakenError(text)) => Err(text.clone()),
        _ => Ok(()),
    });
    if let Err(text) = result {
        state.requests[index].error = Some(text.clone());
        return kraken_error(&text);
    }
    if let Some(recorded) = state.accounts[&api_key].recorded.get(path) {
        return json_ok(recorded.clone());
    }
    answer(&mut state, &api_key, &fields)
}

fn answer_balance_ex(state: &mut SimInner, api_key: &str, fields: &Fields) -> Response {
    if state.drift {
        drift(state, api_key);
    }
    let portfolio = &state.accounts[api_key].portfolio;
    let base = fields.get("rebase_multiplier").map(String::as_str) == Some("base");
    json_ok(render_portfolio(portfolio, base))
}

pub(super) async fn api_key_info(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signed(
        crate::kraken::api_key::PATH,
        inner,
        headers,
        body,
        |state, api_key, _| json_ok(state.accounts[api_key].key_info.render_spot(api_key)),
    )
    .await
}

/// A JSON body with another status than 200.
pub(super) fn json_ok_status(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

pub(super) fn json_ok(body: impl Into<axum::body::Body>) -> Response {
    let body: axum::body::Body = body.into();
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

/// Kraken's checks, in its order: User-Agent, key, nonce present, signature (as checked when the
/// request was recorded), nonce increasing, the 2FA password, the key's permission for the endpoint.
fn authenticate(
    state: &mut SimInner,
    path: &str,
    headers: &HeaderMap,
    api_key: &str,
    fields: &Fields,
    signature_valid: bool,
) -> Result<(), String> {
    if headers.get("user-agent").is_none() {
        return Err("EGeneral:Invalid arguments:User-Agent".to_string());
    }
    let Some(account) = state.accounts.get_mut(api_key) else {
        return Err("EAPI:Invalid key".to_string());
    };
    let Some(nonce) = fields.get("nonce").and_then(|n| n.parse::<u64>().ok()) else {
        return Err("EAPI:Invalid nonce".to_string());
    };
    if !signature_valid {
        return Err("EAPI:Invalid signature".to_string());
    }
    if nonce <= account.last_nonce {
        return Err("EAPI:Invalid nonce".to_string());
    }
    account.last_nonce = nonce;
    // A key with a 2FA password refuses requests without it, as an authentication error.
    match (&account.otp, fields.get("otp")) {
        (Some(expected), Some(sent)) if expected == sent => {}
        (Some(_), _) => return Err("EAPI:Invalid signature".to_string()),
        (None, Some(_)) => return Err("EAPI:Invalid key".to_string()),
        (None, None) => {}
    }
    if account.denied.contains(path) {
        return Err("EGeneral:Permission denied".to_string());
    }
    if let Some(counter) = &mut account.rate {
        if !counter.charge(path) {
            return Err("EAPI:Rate limit exceeded".to_string());
        }
    }
    Ok(())
}

/// The fields of a form or JSON body (form values percent-decoded).
fn parse_body(body: &[u8], is_json: bool) -> Fields {
    if is_json {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        return value
            .as_object()
            .map(|object| {
                object
                    .iter()
                    .map(|(name, value)| {
                        let text = match value {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (name.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_string(), form_decode(value)))
        .collect()
}

fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
