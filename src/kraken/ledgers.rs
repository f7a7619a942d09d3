//! `POST /0/private/Ledgers`: the account's ledger, newest first, in pages of 50. Permission:
//! *Query Ledger Entries*. One call costs 2 points on the key's rate counter (every other private
//! call here costs 1).
//!
//! The request takes `start` (exclusive) and `end` (inclusive) as whole unix seconds, `ofs` (the
//! offset of the page) and `type` (one of Kraken's types, `all` by default). The answer's `ledger` is a
//! JSON object keyed by ledger id whose order is no guarantee: [`decode_ledgers`] sorts the entries
//! newest first (by `time`, then id). `amount` is signed (money out is negative), `fee` is charged on
//! top; both are read exactly, and so is `time` (up to 6 fractional digits, several entries can share
//! one). `count`, the number of entries the filter matches, has been seen as a number and as a string.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::KrakenClient;
use super::envelope::{decode_error, envelope_result, parse_decimal, MAX_NAME_CHARS};
use super::error::PollError;

/// The path that is both requested (after `api_url`) and signed.
pub const PATH: &str = "/0/private/Ledgers";

/// Kraken's method name, the `endpoint` label.
pub const METHOD: &str = "Ledgers";

/// The permission the key needs, in the words of Kraken's key page.
pub const PERMISSION: &str = "Query Ledger Entries";

/// Entries in one page of the answer.
pub const PAGE: usize = 50;

/// Points one call costs on the key's rate counter.
pub const COST: u32 = 2;

/// The largest amount or fee an entry may carry (10^20 units): far past any real one, and small
/// enough that the sums of billions of entries stay inside `Decimal`'s range.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0x6310_0000, 0x6BC7_5E2D, 0x5, false, 0);

/// One ledger entry, as far as the exporter reads it (the `refid`, `aclass` and `balance` are not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The ledger id (`L4UESK-KG3EQ-UFO4T5`): what makes an entry counted once.
    pub id: String,
    /// Unix seconds, exactly as sent.
    pub time: Decimal,
    /// Kraken's type (`trade`, `withdrawal`, `earn`, ...); one Kraken does not document is kept as is.
    pub kind: String,
    /// Kraken's asset code (`ZGBP`, `XXBT`, `DOT.S`, `KFEE`).
    pub asset: String,
    /// Signed: money out is negative.
    pub amount: Decimal,
    /// Charged on top of `amount` (0 when absent).
    pub fee: Decimal,
}

/// One page of the ledger: its entries newest first and how many the filter matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    pub entries: Vec<Entry>,
    /// `count` (absent when Kraken leaves it out).
    pub count: Option<u64>,
}

/// What one call asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Entries after this unix second (exclusive).
    pub start: Option<u64>,
    /// Entries up to this unix second (inclusive).
    pub end: Option<u64>,
    /// The offset of the page, newest first.
    pub offset: usize,
    /// One type only (`withdrawal`); all when `None`.
    pub kind: Option<&'static str>,
}

impl KrakenClient {
    /// Calls `Ledgers` once.
    pub async fn ledgers(&self, query: &Query) -> Result<Page, PollError> {
        let start = query.start.map(|s| s.to_string());
        let end = query.end.map(|e| e.to_string());
        let offset = query.offset.to_string();
        let mut fields: Vec<(&str, &str)> = Vec::new();
        if let Some(start) = &start {
            fields.push(("start", start));
        }
        if let Some(end) = &end {
            fields.push(("end", end));
        }
        if query.offset > 0 {
            fields.push(("ofs", &offset));
        }
        if let Some(kind) = query.kind {
            fields.push(("type", kind));
        }
        self.call(PATH, &fields, decode_ledgers).await
    }
}

#[derive(Deserialize)]
struct RawResult<'a> {
    #[serde(borrow, default)]
    ledger: Option<std::collections::BTreeMap<String, RawEntry<'a>>>,
    #[serde(borrow, default)]
    count: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawEntry<'a> {
    #[serde(borrow)]
    time: &'a RawValue,
    #[serde(rename = "type")]
    kind: String,
    asset: String,
    #[serde(borrow)]
    amount: &'a RawValue,
    #[serde(borrow, default)]
    fee: Option<&'a RawValue>,
}

/// Decodes a `Ledgers` body: its entries newest first and `count`, or the Kraken error, or a decode
/// error naming the entry and the field.
pub fn decode_ledgers(body: &[u8]) -> Result<Page, PollError> {
    let result = envelope_result(body)?;
    let raw: RawResult = serde_json::from_str(result.get())
        .map_err(|err| decode_error(format!("Ledgers: unexpected result ({err})")))?;
    let count = match raw.count {
        None => None,
        Some(count) => Some(
            parse_decimal(count.get())
                .ok()
                .and_then(|count| u64::try_from(count).ok())
                .ok_or_else(|| {
                    decode_error(format!(
                        "Ledgers: count {} is not a whole number",
                        count.get()
                    ))
                })?,
        ),
    };
    let mut entries = Vec::new();
    for (id, entry) in raw.ledger.unwrap_or_default() {
        let at =
            |field: &str, why: String| decode_error(format!("Ledgers entry {id:?} {field}: {why}"));
        for (field, name) in [("id", &id), ("type", &entry.kind), ("asset", &entry.asset)] {
            if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(at(
                    field,
                    format!("longer than {MAX_NAME_CHARS} characters or not printable"),
                ));
            }
        }
        let time = parse_decimal(entry.time.get()).map_err(|why| at("time", why))?;
        if time.is_sign_negative() {
            return Err(at("time", format!("{time} is before 1970")));
        }
        let amount = parse_decimal(entry.amount.get()).map_err(|why| at("amount", why))?;
        let fee = match entry.fee {
            Some(fee) => parse_decimal(fee.get()).map_err(|why| at("fee", why))?,
            None => Decimal::ZERO,
        };
        for (field, value) in [("amount", amount), ("fee", fee)] {
            if value.abs() > MAX_AMOUNT {
                return Err(at(
                    field,
                    format!("{value} is past any amount Kraken sends"),
                ));
            }
        }
        entries.push(Entry {
            id: id.clone(),
            time,
            kind: entry.kind,
            asset: entry.asset,
            amount,
            fee,
        });
    }
    entries.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    Ok(Page { entries, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_newest_first_exactly_whatever_the_objects_order() {
        let body = br#"{"error":[],"result":{"ledger":{
            "L1":{"refid":"R1","time":1688464484.1787,"type":"trade","subtype":"","aclass":"currency","asset":"ZGBP","amount":"-24.5000","fee":"0.0490","balance":"459567.9171"},
            "L3":{"refid":"R3","time":1688464490,"type":"invite bonus","asset":"KFEE","amount":"0.00","fee":"1.25"},
            "L2":{"refid":"R2","time":"1688464484.1787","type":"earn","asset":"DOT.S","amount":"0.0000000001"}},
            "count":"3"}}"#;
        let page = decode_ledgers(body).unwrap();
        assert_eq!(page.count, Some(3));
        let ids: Vec<&str> = page.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["L3", "L2", "L1"]);
        let gbp = &page.entries[2];
        assert_eq!(gbp.time.to_string(), "1688464484.1787");
        assert_eq!(gbp.amount.to_string(), "-24.5000");
        assert_eq!(gbp.fee.to_string(), "0.0490");
        assert_eq!(page.entries[1].fee, Decimal::ZERO);
        assert_eq!(page.entries[0].kind, "invite bonus");
    }

    #[test]
    fn the_largest_amount_is_ten_to_the_twentieth() {
        assert_eq!(
            MAX_AMOUNT,
            Decimal::from_i128_with_scale(10_i128.pow(20), 0)
        );
        let body = br#"{"error":[],"result":{"ledger":{"LX":{"time":1,"type":"trade","asset":"XXBT","amount":"-100000000000000000001"}}}}"#;
        assert!(decode_ledgers(body)
            .unwrap_err()
            .message
            .contains("\"LX\" amount"));
    }

    #[test]
    fn a_bad_field_names_the_entry_and_the_field() {
        let body = br#"{"error":[],"result":{"ledger":{"LX":{"time":1,"type":"trade","asset":"XXBT","amount":"abc"}},"count":1}}"#;
        let err = decode_ledgers(body).unwrap_err();
        assert!(err.message.contains("\"LX\" amount"), "{err}");
        let body = br#"{"error":[],"result":{"ledger":{},"count":"-1"}}"#;
        assert!(decode_ledgers(body).unwrap_err().message.contains("count"));
        let err = decode_ledgers(br#"{"error":["EGeneral:Permission denied"]}"#).unwrap_err();
        assert_eq!(err.reason, crate::kraken::ErrorReason::PermissionDenied);
    }
}
