//! `GET /derivatives/api/v3/accounts`: every wallet of the futures key's account. Permission: a key
//! with *General API: Read Only* access.
//!
//! Wallets are keyed by name (`cash`, `flex`, `fi_xbtusd`) and typed: `cashAccount` (balances per
//! currency), `multiCollateralMarginAccount` (the flex wallet: per-currency figures and USD totals) and
//! `marginAccount` (a single-collateral wallet in its `currency`, whose `balances` mix currencies with
//! contract positions: the positions are sizes, not money, and are not read). Currency codes are
//! upper-cased (`xbt` is `XBT`). Amounts are read exactly from the JSON text, strings or numbers;
//! unknown wallet types and unknown fields are ignored. An answer with more rows (currencies and
//! wallets together) than `max_rows` is refused.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{refusal, FuturesClient};
use crate::kraken::client::{printable, Fingerprint};
use crate::kraken::envelope::{decode_error, parse_decimal, MAX_NAME_CHARS};
use crate::kraken::error::PollError;

/// The path requested (after `futures_api_url`); it is signed without `/derivatives`.
pub const PATH: &str = "/derivatives/api/v3/accounts";

/// The `endpoint` label and the owner of the futures families.
pub const METHOD: &str = "futures/accounts";

/// What the futures key needs, for the log line of a refused call.
pub const PERMISSION: &str = "General API - Read Only (a Kraken Futures key)";

/// Every wallet of one answer, exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuturesAccounts {
    /// The cash wallet: currency (upper case) -> balance.
    pub cash: BTreeMap<String, Decimal>,
    pub flex: Option<FlexWallet>,
    /// The single-collateral margin wallets, by wallet name.
    pub margin: Vec<MarginWallet>,
}

/// The multi-collateral (flex) wallet; totals in USD. A figure Kraken left out is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlexWallet {
    pub currencies: Vec<FlexCurrency>,
    pub balance_value: Option<Decimal>,
    pub portfolio_value: Option<Decimal>,
    pub collateral_value: Option<Decimal>,
    pub initial_margin: Option<Decimal>,
    pub initial_margin_with_orders: Option<Decimal>,
    pub maintenance_margin: Option<Decimal>,
    pub margin_equity: Option<Decimal>,
    pub available_margin: Option<Decimal>,
    pub pnl: Option<Decimal>,
    pub unrealized_funding: Option<Decimal>,
    pub total_unrealized: Option<Decimal>,
}

impl FlexWallet {
    /// Margin equity / maintenance margin: positions are liquidated as it falls below 1. `None`
    /// while the maintenance margin is 0 (no position open) or either figure is missing.
    pub fn margin_ratio(&self) -> Option<Decimal> {
        let maintenance = self.maintenance_margin.filter(|m| !m.is_zero())?;
        self.margin_equity?.checked_div(maintenance)
    }
}

/// One currency of the flex wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlexCurrency {
    /// Upper case (`XBT`, `USD`).
    pub currency: String,
    pub quantity: Decimal,
    /// In USD.
    pub value: Decimal,
    /// In USD: what it counts for as margin.
    pub collateral: Decimal,
    /// In the currency: what can be withdrawn or moved.
    pub available: Decimal,
}

/// A single-collateral margin wallet; figures in its `currency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarginWallet {
    /// Kraken's wallet name (`fi_xbtusd`).
    pub wallet: String,
    /// Upper case (`XBT`).
    pub currency: String,
    /// `auxiliary.pv`.
    pub portfolio_value: Option<Decimal>,
    /// `auxiliary.af`.
    pub available_funds: Option<Decimal>,
    /// `auxiliary.pnl`.
    pub pnl: Option<Decimal>,
    /// `marginRequirements.im`.
    pub initial_margin: Option<Decimal>,
    /// `marginRequirements.mm`.
    pub maintenance_margin: Option<Decimal>,
}

impl FuturesClient {
    /// Calls `accounts` once; an answer with more than `max_rows` rows is refused.
    pub async fn accounts(&self, max_rows: usize) -> Result<FuturesAccounts, PollError> {
        self.get(PATH, |body| decode_accounts(body, max_rows)).await
    }

    /// Calls `accounts` once; `Ok(None)` when the answer's wallets are byte for byte those whose
    /// fingerprint is `applied` (not decoded again; the answer's `serverTime` is not part of it),
    /// else the wallets with their fingerprint.
    pub async fn accounts_unless(
        &self,
        max_rows: usize,
        applied: Option<Fingerprint>,
    ) -> Result<Option<(FuturesAccounts, Fingerprint)>, PollError> {
        self.get(PATH, |body| decode_accounts_unless(body, max_rows, applied))
            .await
    }
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// HTTP 401 answers: `{"reason": "...", "status": "unauthorized"}`.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Read as text first: its fingerprint tells an unchanged answer before anything is decoded.
    #[serde(borrow, default)]
    accounts: Option<&'a RawValue>,
}

/// A JSON object read member by member (figures as raw JSON text, so amounts stay exact), refused
/// when a name appears twice: which of two wallets, currencies or margin figures counts would be a
/// guess about money. Names are borrowed from the answer unless escaped (Kraken's have no escapes:
/// no copy per member).
#[derive(Default)]
struct RawObject<'a>(BTreeMap<Cow<'a, str>, &'a RawValue>);

impl<'a> RawObject<'a> {
    fn get(&self, name: &str) -> Option<&&'a RawValue> {
        self.0.get(name)
    }
}

impl<'a> IntoIterator for RawObject<'a> {
    type Item = (Cow<'a, str>, &'a RawValue);
    type IntoIter = std::collections::btree_map::IntoIter<Cow<'a, str>, &'a RawValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// A member's name, borrowed from the answer unless it has escapes (serde's own `Cow<str>` always
/// copies).
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Text<'a> {
            type Value = Name<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                name: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(name.to_string())))
            }
        }
        deserializer.deserialize_str(Text(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Members<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut members = BTreeMap::new();
                while let Some((Name(name), value)) = map.next_entry::<Name, &'de RawValue>()? {
                    if members.contains_key(&name) {
                        return Err(serde::de::Error::custom(format!(
                            "{:?} appears twice",
                            printable(&name)
                        )));
                    }
                    members.insert(name, value);
                }
                Ok(RawObject(members))
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// Refuses a name longer than [`MAX_NAME_CHARS`] (`what`: a wallet or a currency, at `at`; the
/// place is only written out for an error).
fn long_name(at: impl FnOnce() -> String, what: &str, name: &str) -> Result<(), PollError> {
    let length = name.chars().count();
    if length <= MAX_NAME_CHARS {
        return Ok(());
    }
    Err(decode_error(format!(
        "{}: a {what} name of {length} characters ({:?}...) is longer than the {MAX_NAME_CHARS} any Kraken code needs; refused",
        at(),
        printable(&name.chars().take(16).collect::<String>())
    )))
}

/// `currency` upper-cased, refused when another member already named the same currency in
/// another case (`xbt` and `XBT`).
fn one_currency(
    at: impl Fn() -> String,
    currency: &str,
    seen: &mut std::collections::BTreeSet<String>,
) -> Result<String, PollError> {
    long_name(&at, "currency", currency)?;
    let upper = currency.to_ascii_uppercase();
    if !seen.insert(upper.clone()) {
        return Err(decode_error(format!(
            "{}: currency {:?} appears twice (in upper and lower case); refused rather than guess which counts",
            at(),
            printable(&upper)
        )));
    }
    Ok(upper)
}

#[derive(Deserialize)]
struct RawFlexCurrency<'a> {
    #[serde(borrow)]
    quantity: &'a RawValue,
    #[serde(borrow)]
    value: &'a RawValue,
    /// `collateral` in the current documentation, `collateralValue` in older revisions.
    #[serde(borrow, alias = "collateralValue")]
    collateral: &'a RawValue,
    #[serde(borrow)]
    available: &'a RawValue,
}

/// Decodes an `accounts` body: the wallets, or the futures error, or a decode error.
pub fn decode_accounts(body: &[u8], max_rows: usize) -> Result<FuturesAccounts, PollError> {
    let decoded = decode_accounts_unless(body, max_rows, None)?;
    Ok(decoded.map(|(accounts, _)| accounts).unwrap_or_default())
}

/// As [`decode_accounts`], with the wallets' fingerprint; `Ok(None)` when it is `applied` (the
/// wallets are then not decoded). A refusal or an error is always read whatever it is.
pub fn decode_accounts_unless(
    body: &[u8],
    max_rows: usize,
    applied: Option<Fingerprint>,
) -> Result<Option<(FuturesAccounts, Fingerprint)>, PollError> {
    let envelope: RawEnvelope = serde_json::from_slice(body).map_err(|err| {
        let text = String::from_utf8_lossy(body);
        let kind = if text.trim_start().starts_with('<') {
            "an HTML page".to_string()
        } else {
            format!("something else ({err})")
        };
        decode_error(format!(
            "expected Kraken Futures' JSON answer, got {kind} ({} bytes)",
            body.len()
        ))
    })?;
    if let Some(err) = refusal(
        envelope.error.as_deref(),
        envelope.result.as_deref() == Some("success") && envelope.accounts.is_some(),
        envelope.status.as_deref(),
        envelope.reason.as_deref(),
    ) {
        return Err(err);
    }
    if envelope.result.as_deref() != Some("success") {
        return Err(decode_error(format!(
            "Kraken Futures' answer has result {:?}, not \"success\", and no error",
            envelope
                .result
                .as_deref()
                .map(printable)
                .unwrap_or_default()
        )));
    }
    let wallets = envelope
        .accounts
        .ok_or_else(|| decode_error("Kraken Futures' answer has no \"accounts\""))?;
    let fingerprint = Fingerprint::of(wallets.get().as_bytes());
    if applied == Some(fingerprint) {
        return Ok(None);
    }
    let wallets: RawObject = serde_json::from_str(wallets.get()).map_err(|err| {
        decode_error(format!(
            "Kraken Futures' \"accounts\" has an unexpected shape ({err})"
        ))
    })?;
    let mut rows = wallets.0.len();
    let mut accounts = FuturesAccounts::default();
    for (name, raw) in wallets {
        long_name(|| "Kraken Futures' accounts".to_string(), "wallet", &name)?;
        let shape = |err: serde_json::Error| {
            decode_error(format!(
                "futures wallet {:?}: unexpected shape ({err})",
                printable(&name)
            ))
        };
        let wallet: RawObject = serde_json::from_str(raw.get()).map_err(shape)?;
        let object = |name: &str| -> Result<RawObject, PollError> {
            field(&wallet, name, shape).map(Option::unwrap_or_default)
        };
        let text =
            |name: &str| -> Result<Option<String>, PollError> { field(&wallet, name, shape) };
        let at = |field: &str| format!("futures wallet {:?} field {field:?}", printable(&name));
        let kind = text("type")?;
        let kind = kind.as_deref().unwrap_or(match name.as_ref() {
            "cash" => "cashAccount",
            "flex" => "multiCollateralMarginAccount",
            _ => "marginAccount",
        });
        match kind {
            "cashAccount" => {
                let mut seen = std::collections::BTreeSet::new();
                for (currency, amount) in object("balances")? {
                    let value = decimal(|| at(&currency), amount)?;
                    let currency = one_currency(|| at("balances"), &currency, &mut seen)?;
                    accounts.cash.insert(currency, value);
                    rows += 1;
                }
            }
            "multiCollateralMarginAccount" => {
                let mut flex = FlexWallet::default();
                let mut seen = std::collections::BTreeSet::new();
                for (currency, raw) in object("currencies")? {
                    let upper = one_currency(|| at("currencies"), &currency, &mut seen)?;
                    let at = |field: &str| at(&format!("currencies.{currency}.{field}"));
                    let figures: RawFlexCurrency = serde_json::from_str(raw.get())
                        .map_err(|err| decode_error(format!("{}: {err}", at(""))))?;
                    flex.currencies.push(FlexCurrency {
                        currency: upper,
                        quantity: decimal(|| at("quantity"), figures.quantity)?,
                        value: decimal(|| at("value"), figures.value)?,
                        collateral: decimal(|| at("collateral"), figures.collateral)?,
                        available: decimal(|| at("available"), figures.available)?,
                    });
                    rows += 1;
                }
                let total = |field: &str| {
                    wallet
                        .get(field)
                        .map(|raw| decimal(|| at(field), raw))
                        .transpose()
                };
                flex.balance_value = total("balanceValue")?;
                flex.portfolio_value = total("portfolioValue")?;
                flex.collateral_value = total("collateralValue")?;
                flex.initial_margin = total("initialMargin")?;
                flex.initial_margin_with_orders = total("initialMarginWithOrders")?;
                flex.maintenance_margin = total("maintenanceMargin")?;
                flex.margin_equity = total("marginEquity")?;
                flex.available_margin = total("availableMargin")?;
                flex.pnl = total("pnl")?;
                flex.unrealized_funding = total("unrealizedFunding")?;
                flex.total_unrealized = total("totalUnrealized")?;
                accounts.flex = Some(flex);
            }
            "marginAccount" => {
                let Some(currency) = text("currency")? else {
                    return Err(decode_error(format!("{} is missing", at("currency"))));
                };
                let currency = currency.trim();
                long_name(|| at("currency"), "currency", currency)?;
                let auxiliary = object("auxiliary")?;
                let requirements = object("marginRequirements")?;
                let figure = |map: &RawObject, group: &str, field: &str| {
                    map.get(field)
                        .map(|raw| decimal(|| at(&format!("{group}.{field}")), raw))
                        .transpose()
                };
                accounts.margin.push(MarginWallet {
                    wallet: name.to_string(),
                    currency: currency.to_ascii_uppercase(),
                    portfolio_value: figure(&auxiliary, "auxiliary", "pv")?,
                    available_funds: figure(&auxiliary, "auxiliary", "af")?,
                    pnl: figure(&auxiliary, "auxiliary", "pnl")?,
                    initial_margin: figure(&requirements, "marginRequirements", "im")?,
                    maintenance_margin: figure(&requirements, "marginRequirements", "mm")?,
                });
            }
            // A wallet type this version does not know: not money it can label correctly.
            _ => {}
        }
        if rows > max_rows {
            return Err(decode_error(format!(
                "Kraken Futures' answer has more than {max_rows} wallets and currencies (max_assets); refused"
            )));
        }
    }
    Ok(Some((accounts, fingerprint)))
}

/// The exact amount in `raw`; `at` names the place in an error (written out only then).
fn decimal(at: impl FnOnce() -> String, raw: &RawValue) -> Result<Decimal, PollError> {
    parse_decimal(raw.get()).map_err(|why| decode_error(format!("{}: {why}", at())))
}

/// A wallet's `field`, if present, read as `T`; `shape` names what did not fit.
fn field<'a, T: Deserialize<'a>>(
    wallet: &RawObject<'a>,
    field: &str,
    shape: impl Fn(serde_json::Error) -> PollError,
) -> Result<Option<T>, PollError> {
    wallet
        .get(field)
        .map(|raw| serde_json::from_str(raw.get()).map_err(&shape))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::error::ErrorReason;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    /// Kraken's documented example (KRAKEN_API.md, "Kraken Futures"), `"...": {}` left out.
    const DOCUMENTED: &str =
        include_str!("../../../tests/fixtures/futures/accounts_documented.json");

    #[test]
    fn decodes_the_documented_example_exactly() {
        let accounts = decode_accounts(DOCUMENTED.as_bytes(), 100).unwrap();
        assert_eq!(accounts.cash["XBT"], dec("141.31756797"));
        assert_eq!(accounts.cash["XRP"], dec("52465.1254"));
        let flex = accounts.flex.as_ref().unwrap();
        assert_eq!(flex.currencies.len(), 1);
        let xbt = &flex.currencies[0];
        assert_eq!(xbt.currency, "XBT");
        assert_eq!(xbt.quantity, dec("0.1185308247"));
        assert_eq!(xbt.value, dec("4998.721054420551"));
        assert_eq!(xbt.collateral, dec("4886.49976674881"));
        assert_eq!(flex.margin_equity, Some(dec("34122.66")));
        assert_eq!(flex.maintenance_margin, Some(Decimal::ZERO));
        assert_eq!(flex.margin_ratio(), None, "no position: no ratio");
        assert_eq!(accounts.margin.len(), 1);
        let fi = &accounts.margin[0];
        assert_eq!(fi.wallet, "fi_xbtusd");
        assert_eq!(fi.currency, "XBT");
        assert_eq!(fi.portfolio_value, Some(dec("153.73891563")));
        assert_eq!(fi.available_funds, Some(dec("100.73891563")));
        assert_eq!(fi.maintenance_margin, Some(dec("23.76")));
    }

    #[test]
    fn older_shapes_numbers_and_an_empty_flex_wallet_decode() {
        let body = br#"{"result":"success","serverTime":"2019-01-01T00:00:00.000Z","accounts":{
            "cash":{"type":"cashAccount","balances":{"xbt":0.5,"usd":1e2}},
            "flex":{"type":"multiCollateralMarginAccount","currencies":{},"marginEquity":10,"maintenanceMargin":4}}}"#;
        let accounts = decode_accounts(body, 100).unwrap();
        assert_eq!(accounts.cash["XBT"], dec("0.5"));
        assert_eq!(accounts.cash["USD"], dec("100"));
        let flex = accounts.flex.unwrap();
        assert!(flex.currencies.is_empty());
        assert_eq!(flex.margin_ratio(), Some(dec("2.5")));
        assert_eq!(flex.available_margin, None);
    }

    #[test]
    fn futures_errors_are_classified() {
        let cases: [(&[u8], ErrorReason); 5] = [
            (br#"{"result":"error","error":"authenticationError","serverTime":"2024-01-01T00:00:00Z"}"#, ErrorReason::InvalidKey),
            (br#"{"result":"error","error":"apiLimitExceeded"}"#, ErrorReason::RateLimited),
            (br#"{"result":"error","error":"nonceBelowThreshold"}"#, ErrorReason::InvalidNonce),
            (br#"{"reason":"invalid key","status":"unauthorized"}"#, ErrorReason::InvalidKey),
            (b"<html><body>502</body></html>", ErrorReason::Decode),
        ];
        for (body, reason) in cases {
            let err = decode_accounts(body, 100).unwrap_err();
            assert_eq!(err.reason, reason, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn positions_are_not_money_and_bad_amounts_are_named() {
        let accounts = decode_accounts(DOCUMENTED.as_bytes(), 100).unwrap();
        assert!(!format!("{accounts:?}").contains("FI_XBTUSD_171215"));
        let err = decode_accounts(
            br#"{"result":"success","accounts":{"cash":{"type":"cashAccount","balances":{"xbt":"lots"}}}}"#,
            100,
        )
        .unwrap_err();
        assert_eq!(err.reason, ErrorReason::Decode);
        assert!(
            err.message.contains("\"cash\"") && err.message.contains("xbt"),
            "{err}"
        );
        let err = decode_accounts(DOCUMENTED.as_bytes(), 3).unwrap_err();
        assert!(err.message.contains("max_assets"), "{err}");
    }

    #[test]
    fn a_wallet_or_currency_name_longer_than_any_kraken_code_is_refused() {
        let long = "w".repeat(900);
        for body in [
            format!(
                r#"{{"result":"success","accounts":{{"{long}":{{"type":"cashAccount","balances":{{}}}}}}}}"#
            ),
            format!(
                r#"{{"result":"success","accounts":{{"cash":{{"type":"cashAccount","balances":{{"{long}":"1"}}}}}}}}"#
            ),
            format!(
                r#"{{"result":"success","accounts":{{"fi_xbtusd":{{"type":"marginAccount","currency":"{long}"}}}}}}"#
            ),
        ] {
            let err = decode_accounts(body.as_bytes(), 100).unwrap_err();
            assert!(
                err.message.contains("name of 900 characters")
                    && err.message.contains("longer than the 64")
                    && err.message.len() < 300,
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn a_currency_wallet_or_field_given_twice_is_refused_not_guessed() {
        for (body, named) in [
            // One currency in two cases: 1 or 1000 XBT?
            (
                r#"{"result":"success","accounts":{"cash":{"type":"cashAccount","balances":{"xbt":"1","XBT":"1000"}}}}"#,
                "\"XBT\" appears twice",
            ),
            (
                r#"{"result":"success","accounts":{"flex":{"type":"multiCollateralMarginAccount","currencies":{"usd":{"quantity":"1","value":"1","collateral":"1","available":"1"},"USD":{"quantity":"2","value":"2","collateral":"2","available":"2"}}}}}"#,
                "\"USD\" appears twice",
            ),
            // The same wallet, or the same field, twice.
            (
                r#"{"result":"success","accounts":{"cash":{"type":"cashAccount","balances":{"XBT":"1"}},"cash":{"type":"cashAccount","balances":{"XBT":"1000"}}}}"#,
                "\"cash\" appears twice",
            ),
            (
                r#"{"result":"success","accounts":{"cash":{"type":"cashAccount","balances":{"XBT":"1","XBT":"1000"}}}}"#,
                "\"XBT\" appears twice",
            ),
            (
                r#"{"result":"success","accounts":{"flex":{"type":"multiCollateralMarginAccount","currencies":{},"marginEquity":"1","marginEquity":"9"}}}"#,
                "\"marginEquity\" appears twice",
            ),
            // Names are read without a copy unless escaped: the same name written once with an
            // escape is still the same name.
            (
                r#"{"result":"success","accounts":{"cash":{"type":"cashAccount","balances":{"XBT":"1","X\u0042T":"1000"}}}}"#,
                "\"XBT\" appears twice",
            ),
        ] {
            let err = decode_accounts(body.as_bytes(), 100).unwrap_err();
            assert_eq!(err.reason, ErrorReason::Decode, "{body}");
            assert!(err.message.contains(named), "{body}: {err}");
        }
    }

    #[test]
    fn an_escaped_name_is_read_as_the_text_it_stands_for() {
        let body = r#"{"result":"success","accounts":{"c\u0061sh":{"type":"cashAccount","balances":{"x\u0062t":"1.5","USD":"2"}}}}"#;
        let accounts = decode_accounts(body.as_bytes(), 100).unwrap();
        assert_eq!(accounts.cash["XBT"], Decimal::new(15, 1));
        assert_eq!(accounts.cash["USD"], Decimal::TWO);
    }

    #[test]
    fn wallets_the_same_as_those_applied_are_not_decoded_whatever_the_server_time() {
        let at = |time: &str, xbt: &str| {
            format!(
                r#"{{"result":"success","serverTime":"{time}","accounts":{{"cash":{{"type":"cashAccount","balances":{{"xbt":"{xbt}"}}}}}}}}"#
            )
        };
        let (first, fingerprint) =
            decode_accounts_unless(at("2026-01-01T00:00:00.000Z", "1").as_bytes(), 100, None)
                .unwrap()
                .expect("nothing applied yet: decoded");
        assert_eq!(first.cash["XBT"], Decimal::ONE);
        let later = at("2026-01-01T00:00:10.000Z", "1");
        assert!(
            decode_accounts_unless(later.as_bytes(), 100, Some(fingerprint))
                .unwrap()
                .is_none()
        );
        let (moved, other) = decode_accounts_unless(
            at("2026-01-01T00:00:20.000Z", "2").as_bytes(),
            100,
            Some(fingerprint),
        )
        .unwrap()
        .expect("a wallet moved: decoded");
        assert_eq!(moved.cash["XBT"], Decimal::TWO);
        assert_ne!(other, fingerprint);
        // A refusal is read whatever was applied before.
        let refused = br#"{"result":"error","error":"authenticationError","serverTime":"2026-01-01T00:00:30.000Z"}"#;
        let err = decode_accounts_unless(refused, 100, Some(fingerprint)).unwrap_err();
        assert_eq!(err.reason, ErrorReason::InvalidKey);
    }
}
