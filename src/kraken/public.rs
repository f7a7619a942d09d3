//! Kraken's public market data: `Assets`, `AssetPairs` and `Ticker`. Unsigned `GET`s: no API key, no
//! nonce, and a rate budget of their own, separate from the private `BalanceEx` calls.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::exchange;
use super::envelope::{decode_error, envelope_result, parse_decimal};
use super::error::PollError;

/// One asset of `GET /0/public/Assets`.
#[derive(Debug, Clone, Deserialize)]
pub struct AssetInfo {
    pub altname: String,
}

/// The `(raw code, altname)` pairs of an `Assets` answer.
pub fn altnames(
    assets: &BTreeMap<String, AssetInfo>,
) -> impl Iterator<Item = (&str, &str)> + Clone {
    assets
        .iter()
        .map(|(code, info)| (code.as_str(), info.altname.as_str()))
}

/// One pair of `GET /0/public/AssetPairs`: raw asset keys of its base and quote.
#[derive(Debug, Clone, Deserialize)]
pub struct PairInfo {
    pub base: String,
    pub quote: String,
    #[serde(default)]
    pub altname: Option<String>,
}

/// The client for the public endpoints, sharing the HTTP client of the private one.
#[derive(Debug, Clone)]
pub struct PublicClient {
    http: reqwest::Client,
    api_url: String,
}

impl PublicClient {
    pub fn new(http: reqwest::Client, api_url: &str) -> Self {
        Self {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
        }
    }

    /// The base URL it calls.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    async fn get<T>(
        &self,
        path: &str,
        decode: fn(&[u8]) -> Result<T, PollError>,
    ) -> Result<T, PollError> {
        let url = format!("{}{path}", self.api_url);
        // Unsigned: no nonce to hold, no secret to scrub.
        exchange(self.http.get(&url), &url, (), &[], decode).await
    }

    /// Raw asset key -> altname (`XXBT` -> `XBT`).
    pub async fn assets(&self) -> Result<BTreeMap<String, AssetInfo>, PollError> {
        self.get("/0/public/Assets", decode_assets).await
    }

    /// Pair key -> base and quote.
    pub async fn asset_pairs(&self) -> Result<BTreeMap<String, PairInfo>, PollError> {
        self.get("/0/public/AssetPairs", decode_asset_pairs).await
    }

    /// Pair key -> last trade price, for every pair, in one call.
    pub async fn last_prices(&self) -> Result<BTreeMap<String, Decimal>, PollError> {
        self.get("/0/public/Ticker", decode_ticker).await
    }
}

/// Decodes an `Assets` body into raw key -> asset info.
pub fn decode_assets(body: &[u8]) -> Result<BTreeMap<String, AssetInfo>, PollError> {
    decode_map(body, "Assets")
}

/// Decodes an `AssetPairs` body into pair key -> base and quote.
pub fn decode_asset_pairs(body: &[u8]) -> Result<BTreeMap<String, PairInfo>, PollError> {
    decode_map(body, "AssetPairs")
}

fn decode_map<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<BTreeMap<String, T>, PollError> {
    let result = envelope_result(body)?;
    serde_json::from_str(result.get())
        .map_err(|e| decode_error(format!("{what}: unexpected result ({e})")))
}

#[derive(Deserialize)]
struct RawTicker<'a> {
    /// Last trade closed: `[price, lot volume]`.
    #[serde(borrow)]
    c: Vec<&'a RawValue>,
}

/// Decodes a `Ticker` body into pair -> last trade price; pairs without a usable price are left out.
pub fn decode_ticker(body: &[u8]) -> Result<BTreeMap<String, Decimal>, PollError> {
    let result = envelope_result(body)?;
    let raw: BTreeMap<String, RawTicker> = serde_json::from_str(result.get())
        .map_err(|e| decode_error(format!("Ticker: unexpected result ({e})")))?;
    Ok(raw
        .into_iter()
        .filter_map(|(pair, ticker)| {
            let price = parse_decimal(ticker.c.first()?.get()).ok()?;
            (price > Decimal::ZERO).then_some((pair, price))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn ticker_last_prices_are_exact_and_unusable_ones_are_skipped() {
        let body = br#"{"error":[],"result":{
            "XXBTZUSD":{"a":["95000.2","1","1.0"],"c":["95000.10000","0.0012"],"v":["1","2"]},
            "XETHXXBT":{"c":["0.03579",  "1"]},
            "BADPAIR":{"c":["0.0","1"]},
            "EMPTY":{"c":[]}}}"#;
        let prices = decode_ticker(body).unwrap();
        assert_eq!(
            prices["XXBTZUSD"],
            Decimal::from_str("95000.10000").unwrap()
        );
        assert_eq!(prices["XETHXXBT"], Decimal::from_str("0.03579").unwrap());
        assert_eq!(prices.len(), 2);
    }

    #[test]
    fn assets_and_pairs_decode_their_fields() {
        let assets: BTreeMap<String, AssetInfo> = decode_map(
            br#"{"error":[],"result":{"XXBT":{"aclass":"currency","altname":"XBT","decimals":10}}}"#,
            "Assets",
        )
        .unwrap();
        assert_eq!(assets["XXBT"].altname, "XBT");
        let pairs: BTreeMap<String, PairInfo> = decode_map(
            br#"{"error":[],"result":{"XXBTZUSD":{"altname":"XBTUSD","base":"XXBT","quote":"ZUSD"}}}"#,
            "AssetPairs",
        )
        .unwrap();
        assert_eq!(
            (
                pairs["XXBTZUSD"].base.as_str(),
                pairs["XXBTZUSD"].quote.as_str()
            ),
            ("XXBT", "ZUSD")
        );
        let err =
            decode_map::<PairInfo>(br#"{"error":["EGeneral:Invalid arguments"]}"#, "AssetPairs")
                .unwrap_err();
        assert_eq!(err.reason, crate::kraken::ErrorReason::ApiError);
    }
}
