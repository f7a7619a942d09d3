//! `POST /0/private/GetApiKeyInfo`: what the calling key itself may do, when it expires and where it
//! may be used from. Needs no permission; costs 1 point like the other calls.
//!
//! Kraken's answer also names the key (`apiKey`) and the account (`iban`): they are never read into
//! anything (the raw answer is decoded field by field and those two fields are skipped), so they
//! cannot reach a log, a metric or the status page. Times are unix seconds, as strings or numbers;
//! `"0"` means none (`validUntil` 0: never expires). An account or region without the endpoint
//! answers `EGeneral:Unknown method` or `EAPI:Feature disabled`: reason `not_offered`.
//!
//! [`KeyInfo`] is the one shape of both Kraken APIs' answers (the futures `api-keys/v3/check` is
//! decoded into it by [`super::futures::key_check`]).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::client::{printable, KrakenClient};
use super::envelope::{decode_error, envelope_result, MAX_NAME_CHARS};
use super::error::PollError;

/// The path requested (after `api_url`) and signed.
pub const PATH: &str = "/0/private/GetApiKeyInfo";

/// Kraken's method name, the `endpoint` label.
pub const METHOD: &str = "GetApiKeyInfo";

/// What the key needs: nothing (every key may ask about itself).
pub const PERMISSION: &str = "none (every key may call it)";

/// The most permissions or allowlist entries one key may list: each permission is a label value.
pub const MAX_ENTRIES: usize = 64;

/// What a key is allowed, as Kraken answered it (identifiers of the key and the account left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name as its owner gave it on Kraken (`apiKeyName`; none for futures keys).
    pub name: Option<String>,
    /// Kraken's own permission strings (`query-funds`, `withdraw-funds`), sorted, each once.
    pub permissions: Vec<String>,
    /// When the key stops working (unix seconds); `None`: never.
    pub valid_until: Option<u64>,
    /// The key sees only what happened from (`queryFrom`) ...
    pub query_from: Option<u64>,
    /// ... up to (`queryTo`); past that, balances stop moving.
    pub query_to: Option<u64>,
    /// How far out of order nonces may arrive (`nonceWindow`).
    pub nonce_window: Option<u64>,
    pub created: Option<u64>,
    pub modified: Option<u64>,
    /// The addresses or networks the key may be used from; empty: anywhere.
    pub allowlist: Vec<String>,
}

impl KeyInfo {
    /// Whether the key may be used only from listed addresses (a `0.0.0.0/0` or `::/0` entry lets
    /// in everyone, so it does not count).
    pub fn ip_restricted(&self) -> bool {
        !self.allowlist.is_empty()
            && !self
                .allowlist
                .iter()
                .any(|entry| matches!(entry.trim(), "0.0.0.0/0" | "::/0"))
    }

    /// Whether the query window ended before `now` (unix seconds): balances then stop moving.
    pub fn query_window_ended(&self, now: u64) -> bool {
        self.query_to.is_some_and(|to| to < now)
    }
}

impl KrakenClient {
    /// Calls `GetApiKeyInfo` once.
    pub async fn api_key_info(&self) -> Result<KeyInfo, PollError> {
        self.call(PATH, &[], decode_api_key_info).await
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKeyInfo<'a> {
    #[serde(default)]
    api_key_name: Option<String>,
    #[serde(borrow)]
    permissions: &'a RawValue,
    #[serde(borrow, default)]
    nonce_window: Option<&'a RawValue>,
    #[serde(borrow, default)]
    valid_until: Option<&'a RawValue>,
    #[serde(borrow, default)]
    query_from: Option<&'a RawValue>,
    #[serde(borrow, default)]
    query_to: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    modified_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ip_allowlist: Option<&'a RawValue>,
}

/// Decodes a `GetApiKeyInfo` body: the key's settings, or the Kraken error, or a decode error.
pub fn decode_api_key_info(body: &[u8]) -> Result<KeyInfo, PollError> {
    let result = envelope_result(body)?;
    let raw: RawKeyInfo = serde_json::from_str(result.get())
        .map_err(|err| decode_error(format!("GetApiKeyInfo: unexpected result ({err})")))?;
    let time = |name: &str, value: Option<&RawValue>| {
        value
            .map(|value| unix_seconds(&format!("GetApiKeyInfo field {name:?}"), value))
            .transpose()
            .map(Option::flatten)
    };
    Ok(KeyInfo {
        name: raw.api_key_name.map(|name| printable(&name)),
        permissions: names("GetApiKeyInfo permissions", raw.permissions)?,
        nonce_window: raw
            .nonce_window
            .map(|value| whole("GetApiKeyInfo field \"nonceWindow\"", value))
            .transpose()?,
        valid_until: time("validUntil", raw.valid_until)?,
        query_from: time("queryFrom", raw.query_from)?,
        query_to: time("queryTo", raw.query_to)?,
        created: time("createdTime", raw.created_time)?,
        modified: time("modifiedTime", raw.modified_time)?,
        allowlist: raw
            .ip_allowlist
            .map(|list| names("GetApiKeyInfo ipAllowlist", list))
            .transpose()?
            .unwrap_or_default(),
    })
}

/// A whole number written as a string or a number.
pub(crate) fn whole(at: &str, value: &RawValue) -> Result<u64, PollError> {
    let text = value.get().trim();
    let text = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    text.trim()
        .parse()
        .map_err(|_| decode_error(format!("{at}: {:?} is not a whole number", printable(text))))
}

/// Unix seconds written as a string or a number; 0 means none.
fn unix_seconds(at: &str, value: &RawValue) -> Result<Option<u64>, PollError> {
    Ok(Some(whole(at, value)?).filter(|&seconds| seconds != 0))
}

/// A list of short strings (permissions, allowlist entries), sorted and each once; refused when
/// longer than [`MAX_ENTRIES`] or an entry is not a short printable string.
pub(crate) fn names(at: &str, value: &RawValue) -> Result<Vec<String>, PollError> {
    let list: Vec<String> = serde_json::from_str(value.get())
        .map_err(|err| decode_error(format!("{at}: expected a list of strings ({err})")))?;
    checked_names(at, list)
}

/// `list` sorted and each once, refused when longer than [`MAX_ENTRIES`] or an entry is not a short
/// printable string.
pub(crate) fn checked_names(at: &str, list: Vec<String>) -> Result<Vec<String>, PollError> {
    if list.len() > MAX_ENTRIES {
        return Err(decode_error(format!(
            "{at}: {} entries, more than the {MAX_ENTRIES} any key has; refused",
            list.len()
        )));
    }
    let mut out = std::collections::BTreeSet::new();
    for entry in list {
        let entry = entry.trim().to_string();
        if entry.is_empty() {
            continue;
        }
        if entry.chars().count() > MAX_NAME_CHARS || entry.chars().any(char::is_control) {
            return Err(decode_error(format!(
                "{at}: an entry {:?}... longer than {MAX_NAME_CHARS} characters or with control characters; refused",
                printable(&entry.chars().take(16).collect::<String>())
            )));
        }
        out.insert(entry);
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kraken::ErrorReason;

    /// Kraken's documented example answer (docs.kraken.com, "Get API Key Info", added to the API on
    /// 11 March 2026), with its `apiKey` and `iban` as documented.
    pub(crate) const KRAKEN_EXAMPLE: &str = r#"{"error": [], "result": {"apiKeyName": "my-api-key", "apiKey": "4/SDrDBc...", "nonce": "1772627060997",
      "nonceWindow": 0, "permissions": ["query-funds", "withdraw-funds", "query-open-trades", "modify-trades"],
      "iban": "AA88 N84G WOAK NMOI", "validUntil": "0", "queryFrom": "0", "queryTo": "0",
      "createdTime": "1772542900", "modifiedTime": "1772543095", "ipAllowlist": [], "lastUsed": "1772627061"}}"#;

    #[test]
    fn decodes_krakens_example_exactly() {
        let info = decode_api_key_info(KRAKEN_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(
            info,
            KeyInfo {
                name: Some("my-api-key".into()),
                permissions: vec![
                    "modify-trades".into(),
                    "query-funds".into(),
                    "query-open-trades".into(),
                    "withdraw-funds".into()
                ],
                valid_until: None,
                query_from: None,
                query_to: None,
                nonce_window: Some(0),
                created: Some(1_772_542_900),
                modified: Some(1_772_543_095),
                allowlist: Vec::new(),
            }
        );
        assert!(!info.ip_restricted());
        let text = format!("{info:?}");
        assert!(
            !text.contains("4/SDrDBc") && !text.contains("AA88"),
            "{text}"
        );
    }

    #[test]
    fn times_and_lists_in_either_spelling() {
        let info = decode_api_key_info(
            br#"{"error":[],"result":{"permissions":["query-funds","query-funds"],"validUntil":1790000000,
              "queryTo":"1700000000","ipAllowlist":["203.0.113.7/32"]}}"#,
        )
        .unwrap();
        assert_eq!(info.permissions, vec!["query-funds".to_string()]);
        assert_eq!(info.valid_until, Some(1_790_000_000));
        assert!(info.query_window_ended(1_700_000_001));
        assert!(!info.query_window_ended(1_699_999_999));
        assert!(info.ip_restricted());
        let open = KeyInfo {
            allowlist: vec!["0.0.0.0/0".into()],
            ..KeyInfo::default()
        };
        assert!(!open.ip_restricted());
    }

    #[test]
    fn refusals_and_unknown_methods() {
        let err = decode_api_key_info(br#"{"error":["EGeneral:Unknown method"]}"#).unwrap_err();
        assert_eq!(err.reason, ErrorReason::NotOffered);
        let err = decode_api_key_info(br#"{"error":["EAPI:Feature disabled"]}"#).unwrap_err();
        assert_eq!(err.reason, ErrorReason::NotOffered);
        let long = format!(
            r#"{{"error":[],"result":{{"permissions":["{}"]}}}}"#,
            "x".repeat(65)
        );
        let err = decode_api_key_info(long.as_bytes()).unwrap_err();
        assert_eq!(err.reason, ErrorReason::Decode);
        let many: Vec<String> = (0..65).map(|i| format!("p{i}")).collect();
        let body = serde_json::json!({"error": [], "result": {"permissions": many}}).to_string();
        assert_eq!(
            decode_api_key_info(body.as_bytes()).unwrap_err().reason,
            ErrorReason::Decode
        );
        let err = decode_api_key_info(
            br#"{"error":[],"result":{"permissions":["query-funds"],"validUntil":"soon"}}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("validUntil"), "{err}");
    }
}
